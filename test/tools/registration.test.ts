import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { merchantToken } from "../helpers/tokens.js";

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

// Where a keyword holds one subschema, a list of them, or a map of names to them: every draft's
// applicators, as MCP Inspector's schema lint walks them.
const ONE_SCHEMA = [
  "items",
  "additionalItems",
  "unevaluatedItems",
  "contains",
  "not",
  "propertyNames",
  "if",
  "then",
  "else",
  "additionalProperties",
  "unevaluatedProperties",
  "contentSchema",
];
const SCHEMA_LIST = ["allOf", "anyOf", "oneOf", "prefixItems"];
const SCHEMA_MAP = ["properties", "patternProperties", "dependentSchemas", "dependencies", "$defs", "definitions"];
/** The only places where a bare `true` or `false` is portable. */
const BOOLEAN_ALLOWED = new Set(["additionalProperties", "unevaluatedProperties", "additionalItems", "unevaluatedItems"]);
const COMPOSITIONS = ["anyOf", "oneOf", "allOf"];

type SchemaNode = Record<string, unknown>;
const isNode = (value: unknown): value is SchemaNode => typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * What a client that maps tool schemas onto a narrower dialect (Gemini's OpenAPI subset, say)
 * would trip over, as "path: problem". MCP Inspector's `--strict` rules (no type arrays, no bare
 * boolean schemas, no schema that constrains nothing, no remote `$ref`), made stricter where this
 * server has a convention: every schema has a `type` or composes typed schemas, no `$ref` at all,
 * and null is written one way only, as a described `{ "type": "null" }` branch of an `anyOf`.
 */
function portabilityProblems(schema: unknown, path = "", keyword?: string): string[] {
  if (typeof schema === "boolean") return BOOLEAN_ALLOWED.has(keyword ?? "") ? [] : [`${path}: bare ${schema} as a schema`];
  if (!isNode(schema)) return [`${path}: not a schema`];
  const problems: string[] = [];
  const type = schema.type;
  if (Array.isArray(type)) problems.push(`${path}: type is an array (${JSON.stringify(type)}); write anyOf branches`);
  if (typeof type !== "string" && !Array.isArray(type) && !COMPOSITIONS.some((key) => Array.isArray(schema[key]))) {
    problems.push(`${path}: neither a type nor a composition of typed schemas`);
  }
  if ("$ref" in schema) problems.push(`${path}: $ref; publish the schema inline`);
  if ("nullable" in schema) problems.push(`${path}: nullable keyword (OpenAPI 3.0), not JSON Schema`);
  if (schema.const === null || (Array.isArray(schema.enum) && schema.enum.includes(null))) {
    problems.push(`${path}: null as a value; write a { "type": "null" } branch`);
  }
  if (type === "null") {
    if (keyword !== "anyOf") problems.push(`${path}: a null type outside an anyOf`);
    if (typeof schema.description !== "string" || Object.keys(schema).some((key) => key !== "type" && key !== "description")) {
      problems.push(`${path}: a null branch must be { type, description } saying what null means`);
    }
  }
  for (const key of ["oneOf", "allOf"]) {
    if (Array.isArray(schema[key]) && (schema[key] as unknown[]).some((branch) => isNode(branch) && branch.type === "null")) {
      problems.push(`${path}: null inside ${key}; only anyOf may carry it`);
    }
  }
  if (Array.isArray(schema.anyOf) && schema.anyOf.filter((branch) => isNode(branch) && branch.type === "null").length > 1) {
    problems.push(`${path}: more than one null branch`);
  }

  const at = (key: string) => (path === "" ? key : `${path}.${key}`);
  for (const key of ONE_SCHEMA) {
    if (!(key in schema)) continue;
    const value = schema[key];
    if (Array.isArray(value)) value.forEach((sub, i) => problems.push(...portabilityProblems(sub, `${at(key)}[${i}]`, key)));
    else problems.push(...portabilityProblems(value, at(key), key));
  }
  for (const key of SCHEMA_LIST) {
    const list = schema[key];
    if (Array.isArray(list)) list.forEach((sub, i) => problems.push(...portabilityProblems(sub, `${at(key)}[${i}]`, key)));
  }
  for (const key of SCHEMA_MAP) {
    const map = schema[key];
    if (!isNode(map)) continue;
    for (const [name, sub] of Object.entries(map)) {
      // A draft-7 `dependencies` entry may be a list of property names rather than a schema.
      if (!Array.isArray(sub)) problems.push(...portabilityProblems(sub, `${at(key)}.${name}`, key));
    }
  }
  return problems;
}

describe("the schema portability check", () => {
  it.each([
    ["a type array", { type: ["string", "null"] }, /type is an array/],
    ["an empty schema", { properties: { from: {} } }, /properties\.from: neither a type/],
    ["an enum without a type", { enum: ["a", "b"] }, /neither a type/],
    ["a bare true", { type: "object", properties: { to: true } }, /properties\.to: bare true/],
    ["a remote $ref", { $ref: "https://example.com/schema.json" }, /\$ref/],
    ["a local $ref", { type: "object", properties: { a: { $ref: "#/$defs/a" } } }, /properties\.a: .*\$ref/],
    ["OpenAPI's nullable", { type: "string", nullable: true }, /nullable keyword/],
    ["null in an enum", { type: "string", enum: ["a", null] }, /null as a value/],
    ["an undescribed null branch", { anyOf: [{ type: "string" }, { type: "null" }] }, /anyOf\[1\]: a null branch must be/],
    ["a null branch in oneOf", { oneOf: [{ type: "string" }, { type: "null", description: "none" }] }, /null inside oneOf/],
    ["a null type on its own", { type: "object", properties: { a: { type: "null", description: "x" } } }, /a null type outside an anyOf/],
    [
      "an untyped node deep inside",
      { type: "array", items: { type: "object", additionalProperties: { anyOf: [{}] } } },
      /items\.additionalProperties\.anyOf\[0\]: neither a type/,
    ],
  ])("finds %s", (_label, schema, problem) => {
    expect(portabilityProblems(schema).join("\n")).toMatch(problem);
  });

  it("passes the server's conventions", () => {
    const nullable = { anyOf: [{ type: "string", maxLength: 3 }, { type: "null", description: "None." }], description: "d" };
    expect(portabilityProblems({ type: "object", properties: { a: nullable }, additionalProperties: false })).toEqual([]);
  });
});

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

  it("publishes input and output schemas that every client reads the same way", async () => {
    const { tools } = await server.client.listTools();
    expect(tools).toHaveLength(Object.keys(EXPECTED).length);
    const problems = tools.flatMap((tool) =>
      (["inputSchema", "outputSchema"] as const).flatMap((kind) =>
        portabilityProblems(tool[kind], kind).map((problem) => `${tool.name} ${problem}`),
      ),
    );
    expect(problems).toEqual([]);
  });

  it("tells a model, in the tools that make a key, to prefer delivery by file or encrypt_to", async () => {
    const { tools } = await server.client.listTools();
    for (const name of ["create_api_key", "rotate_api_key"]) {
      const tool = tools.find((each) => each.name === name)!;
      expect(tool.description).toMatch(/prefer (delivery )?"file".*"encrypt_to"/);
      expect(tool.description).toMatch(/never enters this conversation/);
      expect((tool.inputSchema as { properties: Record<string, { description?: string }> }).properties.delivery!.description).toMatch(/Prefer file .* or encrypt_to/);
    }
  });

  // The SDK client checks structuredContent against the listed output schema (with
  // additionalProperties false) only once it has listed the tools; the calls below come after.
  it("answers every tool, and every kind of audit change, in the shape its published output schema allows", async () => {
    await server.client.listTools();
    const token = await merchantToken("merchant_schema", "sam");
    const ok = async (name: string, args: Record<string, unknown>) => {
      const outcome = await server.call(name, { ...args, token });
      if (!outcome.ok) throw new Error(`${name}: ${outcome.text}`);
      return outcome.data;
    };
    const full = await ok("create_api_key", {
      name: "full",
      description: "every field set",
      type: "publishable",
      expiration: "30d",
      scopes: ["payments:read"],
    });
    const bare = await ok("create_api_key", { name: "bare" });
    expect((await ok("list_api_keys", { limit: 1 })).next_cursor).toEqual(expect.any(String));
    expect((await ok("list_api_keys", { status: "all" })).next_cursor).toBeNull();
    const keyId = full.key.key_id as string;
    await ok("get_api_key", { key_id: keyId });
    await ok("update_api_key", { key_id: keyId, name: "renamed", description: null, expiration: "never", scopes: ["refunds:*"] });
    await ok("update_api_key", { key_id: keyId, description: "again", expiration: "90d", scopes: [] });
    expect((await ok("verify_api_key", { api_key: bare.api_key })).code).toBe("VALID");
    expect(await ok("verify_api_key", { api_key: "not a key" })).toEqual({ valid: false, code: "MALFORMED" });
    const rotated = await ok("rotate_api_key", { key_id: keyId, grace_period: "1h", expiration: "1y", scopes: ["payments:*"] });
    expect(rotated.key.rotated_from).toBe(keyId);
    await ok("delete_api_key", { key_id: bare.key.key_id });
    const reader = await merchantToken("merchant_schema", "rita", "api_keys:read");
    const denied = await server.call("delete_api_key", { key_id: rotated.key.key_id, token: reader });
    expect(denied).toMatchObject({ ok: false, code: "ERR_FORBIDDEN" });

    const { events } = await ok("list_audit_events", { limit: 100 });
    const kinds = new Set<string>();
    for (const event of events as { changes: Record<string, { from: unknown; to: unknown }> | null }[]) {
      for (const change of Object.values(event.changes ?? {})) {
        for (const value of [change.from, change.to]) kinds.add(value === null ? "null" : Array.isArray(value) ? "array" : typeof value);
      }
    }
    expect([...kinds].sort()).toEqual(["array", "null", "object", "string"]);
  });
});
