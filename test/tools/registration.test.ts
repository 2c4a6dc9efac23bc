import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/server.js";

const EXPECTED = {
  create_api_key: { readOnlyHint: false, destructiveHint: false, idempotentHint: false },
  list_api_keys: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  get_api_key: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  update_api_key: { readOnlyHint: false, destructiveHint: false, idempotentHint: true },
  delete_api_key: { readOnlyHint: false, destructiveHint: true, idempotentHint: true },
  verify_api_key: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  rotate_api_key: { readOnlyHint: false, destructiveHint: true, idempotentHint: false },
  list_audit_events: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
};

describe("tool registration (T)", () => {
  let server: TestServer;
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(() => server.close());

  it("lists exactly the eight tools of phases 1 and 2", async () => {
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

  // Every output that shows a key shows exactly the KeyView: the phase 2 tools embed it too.
  const KEY_VIEWS: [tool: string, path: string][] = [
    ["create_api_key", "key"],
    ["list_api_keys", "keys[]"],
    ["get_api_key", "key"],
    ["update_api_key", "key"],
    ["delete_api_key", "key"],
    ["verify_api_key", "key"],
    ["rotate_api_key", "key"],
    ["rotate_api_key", "previous"],
  ];

  it.each(KEY_VIEWS)("never puts a hash or a plaintext field in the key view schema of %s.%s", async (name, path) => {
    const { tools } = await server.client.listTools();
    const tool = tools.find((candidate) => candidate.name === name)!;
    type ObjectSchema = { properties: Record<string, ObjectSchema & { items?: ObjectSchema }> };
    const field = (tool.outputSchema as ObjectSchema).properties[path.replace("[]", "")]!;
    const view = path.endsWith("[]") ? field.items! : field;
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
        "scopes",
        "rotated_from",
        "rotated_to",
      ].sort(),
    );
  });
});
