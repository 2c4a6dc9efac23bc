import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/server.js";

const EXPECTED = {
  create_api_key: { readOnlyHint: false, destructiveHint: false, idempotentHint: false },
  list_api_keys: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  get_api_key: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  update_api_key: { readOnlyHint: false, destructiveHint: false, idempotentHint: true },
  delete_api_key: { readOnlyHint: false, destructiveHint: true, idempotentHint: true },
};

describe("tool registration (T)", () => {
  let server: TestServer;
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(() => server.close());

  it("lists exactly the five phase 1 tools", async () => {
    const { tools } = await server.client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.entries(EXPECTED))("%s has a title, a description, all four annotations and strict schemas", async (name, hints) => {
    const { tools } = await server.client.listTools();
    const tool = tools.find((candidate) => candidate.name === name)!;
    expect(tool.title).toBeTruthy();
    expect(tool.description!.length).toBeGreaterThan(80);
    expect(tool.description).toMatch(/api_keys:(read|write)/);
    expect(tool.annotations).toEqual({ title: tool.title, ...hints, openWorldHint: false });

    const input = tool.inputSchema as { additionalProperties?: unknown; properties: Record<string, { description?: string }> };
    expect(input.additionalProperties).toBe(false);
    expect(Object.keys(input.properties)).toContain("token");
    for (const [field, schema] of Object.entries(input.properties)) {
      expect(schema.description, `${name}.${field} has a description`).toBeTruthy();
    }
    expect(tool.outputSchema).toBeDefined();
    expect(tool.outputSchema!.type).toBe("object");
  });

  it("never puts a hash or a plaintext field in the key view schema", async () => {
    const { tools } = await server.client.listTools();
    const get = tools.find((tool) => tool.name === "get_api_key")!;
    const view = (get.outputSchema!.properties as Record<string, { properties: Record<string, unknown> }>).key!;
    expect(Object.keys(view.properties).sort()).toEqual(
      [
        "key_id",
        "name",
        "description",
        "type",
        "environment",
        "prefix",
        "status",
        "created_at",
        "updated_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "usage_count",
        "created_by",
      ].sort(),
    );
  });
});
