import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { changeEvents, rows } from "../helpers/db.js";
import { recordFigures } from "../helpers/figures.js";
import { parseLines, requestLine, session, TOOL_NAMES, type Json, type RawToolResult } from "../helpers/rpc.js";
import { spawnRaw, tempDir, type RawServer } from "../helpers/spawn.js";
import { MAX_MESSAGE_BYTES } from "../../src/cli/line-limit.js";
import { generateApiKey } from "../../src/keys/format.js";
import { MAX_LINE_BYTES } from "../../src/log.js";
import { encryptedToken, SPACED_HEADERS, tokenWithHeader } from "../helpers/secret-shapes.js";
import { merchantToken, TEST_SECRET } from "../helpers/tokens.js";
import { ODD_STRINGS } from "./odd-strings.js";

const MB = 1024 * 1024;
const DEPTH = 100_000;
const deepArray = "[".repeat(DEPTH) + "]".repeat(DEPTH);
const deepObject = '{"a":'.repeat(DEPTH) + "1" + "}".repeat(DEPTH);

describe("hostile stdin: the built server survives what a broken or malicious host writes", () => {
  let dir: ReturnType<typeof tempDir>;
  let server: RawServer;
  let rpc: ReturnType<typeof session>;
  let db: Database.Database;
  let keyId: string;
  let plaintext: string;
  const results: { label: string; text: string }[] = [];
  let hostileLines = 0;

  beforeAll(async () => {
    dir = tempDir();
    const dbPath = join(dir.path, "keys.db");
    server = spawnRaw({
      API_KEYS_MCP_JWT_SECRET: TEST_SECRET,
      API_KEYS_MCP_DB: dbPath,
      API_KEYS_MCP_TOKEN: await merchantToken("merchant_hostile", "user_hostile"),
      API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000",
      API_KEYS_MCP_RATE_LIMIT_READ: "1000000",
      API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES: "1000000",
    });
    rpc = session(server);
    await rpc.initialize();
    const created = await rpc.call("create_api_key", { name: "target" });
    const output = created.structuredContent as { key: { key_id: string }; api_key: string };
    keyId = output.key.key_id;
    plaintext = output.api_key;
    db = new Database(dbPath, { readonly: true });
  });
  afterAll(async () => {
    db?.close();
    if (server.child.exitCode === null) {
      server.child.stdin.end();
      await server.exited;
    }
    dir.remove();
  });

  /** What a rejected call must leave alone: every key and every audit row except denials. */
  const snapshot = () => JSON.stringify([rows(db, "api_keys"), changeEvents(db)]);

  /** A valid request after the hostile input: the server must still answer it. */
  async function stillAnswers(after: string): Promise<void> {
    const listed = await rpc.call("list_api_keys", {}, 20_000).catch((error: Error) => {
      throw new Error(`no answer after ${after}: ${error.message}`);
    });
    expect(listed.isError, `list after ${after}`).toBeUndefined();
  }

  async function sendHostile(label: string, line: string | Buffer): Promise<void> {
    hostileLines += 1;
    const before = snapshot();
    server.child.stdin.write(line);
    server.child.stdin.write("\n");
    await stillAnswers(label);
    expect(snapshot(), `${label} changed nothing`).toBe(before);
  }

  /** A tools/call that must be refused (or, for `accept`, may succeed) and never with ERR_INTERNAL. */
  async function callTool(label: string, name: string, args: Json): Promise<RawToolResult> {
    const result = await rpc.call(name, args, 20_000);
    const text = result.content.map((part) => part.text).join("\n");
    results.push({ label, text });
    expect(text, label).not.toMatch(/^ERR_INTERNAL/);
    return result;
  }

  it("answers the next request after a 5 MB junk line", async () => {
    await sendHostile("5 MB junk", "x".repeat(5 * MB));
  });

  // The SDK's transport closes itself when an unterminated line passes 10 MB; the server must
  // drop the line and carry on instead, telling the client why.
  it("answers the next request after a 12 MB line, and says the line was discarded", async () => {
    const before = server.stdoutLines.length;
    await sendHostile("12 MB line", `{"jsonrpc":"2.0","id":"huge","method":"tools/call","params":{"name":"create_api_key","arguments":{"name":"${"y".repeat(12 * MB)}"}}}`);
    const replies = parseLines(server.stdoutLines.slice(before));
    expect(replies).toContainEqual({ jsonrpc: "2.0", error: { code: -32600, message: expect.stringMatching(/discarded/) } });
  });

  it("answers the next request after 100,000-deep JSON, as a message and inside a request", async () => {
    await sendHostile("deep array message", deepArray);
    await sendHostile("deep object message", deepObject);
    await sendHostile("deep array as id", `{"jsonrpc":"2.0","id":${deepArray},"method":"tools/call","params":{"name":"list_api_keys","arguments":{}}}`);
    await sendHostile("deep array as _meta", `{"jsonrpc":"2.0","id":"m","method":"tools/call","params":{"name":"list_api_keys","arguments":{},"_meta":${deepArray}}}`);
    for (const [where, value] of [
      ["name", deepArray],
      ["unknown field", deepArray],
      ["token", deepObject],
      ["description", deepObject],
    ] as const) {
      const field = where === "unknown field" ? "extra" : where;
      const line = `{"jsonrpc":"2.0","id":"deep-${field}","method":"tools/call","params":{"name":"create_api_key","arguments":{"name":"n","${field}":${value}}}}`;
      const before = snapshot();
      server.send(line);
      const reply = await server.response(`deep-${field}`, 20_000);
      const result = reply.result as RawToolResult;
      expect(result.isError, `deep ${where}`).toBe(true);
      expect(result.content[0]!.text).not.toMatch(/^ERR_INTERNAL/);
      expect(snapshot()).toBe(before);
    }
    await stillAnswers("deep arguments");
  });

  it("answers the next request after truncated JSON, cut at every point of a create request", async () => {
    const full = requestLine("cut", "tools/call", { name: "create_api_key", arguments: { name: "never created" } });
    for (let cut = 1; cut < full.length; cut += 3) await sendHostile(`cut at ${cut}`, full.slice(0, cut));
    expect(db.prepare("SELECT COUNT(*) FROM api_keys WHERE name = 'never created'").pluck().get()).toBe(0);
  });

  it("answers the next request after bytes that are not JSON or not UTF-8", async () => {
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const lines: [string, string | Buffer][] = [
      ["invalid UTF-8", Buffer.from([0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80])],
      // Decoded as U+FFFD, as UTF-8 decoders do; the key id then fails its pattern.
      ["invalid UTF-8 inside a string", Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":"u","method":"tools/call","params":{"name":"delete_api_key","arguments":{"key_id":"key_'), Buffer.from([0xff, 0xc3]), Buffer.from('"}}}')])],
      ["raw NUL", "\u0000\u0000\u0000"],
      ["batch of requests", `[${requestLine("b1", "tools/list")},${requestLine("b2", "tools/list")}]`],
      ["JSON-RPC 1.0", '{"id":1,"method":"tools/list","params":[]}'],
      ["a bare string", '"tools/list"'],
      ["null", "null"],
      ["prototype pollution", '{"jsonrpc":"2.0","id":"p","method":"tools/call","params":{"name":"list_api_keys","arguments":{"__proto__":{"status":"all"}}},"__proto__":{"isAdmin":true}}'],
      ["unknown method", requestLine("x", "keys/dump")],
      ["unknown tool", requestLine("y", "tools/call", { name: "drop_all_keys", arguments: {} })],
      ["arguments as an array", requestLine("z", "tools/call", { name: "create_api_key", arguments: ["name"] })],
    ];
    for (let i = 0; i < 20; i++) lines.push([`random bytes ${i}`, Buffer.from(Array.from({ length: 1 + Math.floor(random() * 4000) }, () => Math.floor(random() * 256)).filter((b) => b !== 0x0a))]);
    for (const [label, line] of lines) await sendHostile(label, line);
  });

  it("refuses wrong types for every field of every tool, and changes nothing", async () => {
    const { tools } = (await rpc.request("tools/list")).result as { tools: { name: string; inputSchema: { properties: Record<string, Json>; required?: string[] } }[] };
    const WRONG: [string, unknown][] = [
      ["null", null],
      ["true", true],
      ["zero", 0],
      ["negative", -1],
      ["fraction", 1.5],
      ["huge number", 1e308],
      ["empty array", []],
      ["array of strings", ["x"]],
      ["empty object", {}],
      ["object", { a: 1 }],
      ["string", "x"],
      ["empty string", ""],
      ["number as string", "20"],
    ];
    let tried = 0;
    const fieldsTried = new Set<string>();
    // A valid value for every field a tool requires, so each call is refused for the one wrong field.
    const valid: Json = { key_id: keyId, name: "valid name", api_key: plaintext, grace_period: "1h" };
    for (const tool of tools) {
      for (const required of tool.inputSchema.required ?? []) expect(valid[required], `a valid ${tool.name}.${required}`).toBeDefined();
      for (const [field, schema] of Object.entries(tool.inputSchema.properties)) {
        for (const [label, value] of WRONG) {
          if (accepts(schema, value)) continue;
          const args: Json = {};
          for (const required of tool.inputSchema.required ?? []) args[required] = valid[required];
          args[field] = value;
          const before = snapshot();
          const result = await callTool(`${tool.name}.${field} = ${label}`, tool.name, args);
          expect(result.isError, `${tool.name}.${field} = ${label} is refused`).toBe(true);
          expect(snapshot(), `${tool.name}.${field} = ${label} changed nothing`).toBe(before);
          tried += 1;
          fieldsTried.add(`${tool.name}.${field}`);
        }
      }
      // Missing required fields, and unknown ones.
      for (const args of [{}, { ...Object.fromEntries((tool.inputSchema.required ?? []).map((f) => [f, valid[f]])), merchant_id: "merchant_other" }]) {
        if (Object.keys(args).length === 0 && (tool.inputSchema.required ?? []).length === 0) continue;
        const before = snapshot();
        const result = await callTool(`${tool.name} ${JSON.stringify(Object.keys(args))}`, tool.name, args);
        expect(result.isError).toBe(true);
        expect(snapshot(), `${tool.name} with missing or unknown fields changed nothing`).toBe(before);
        tried += 1;
      }
    }
    // Every field of every tool (token included) met at least one wrong type.
    const fields = tools.flatMap((tool) => Object.keys(tool.inputSchema.properties).map((field) => `${tool.name}.${field}`));
    expect(tools.map((tool) => tool.name).sort()).toEqual(TOOL_NAMES);
    expect([...fieldsTried].sort()).toEqual(fields.sort());
    expect(tried).toBeGreaterThan(300);
    recordFigures("hostile-stdin.wrong-types", { calls: tried, fields: fields.length });
  });

  // Odd text may be refused or stored, but what a client is told was stored is what is stored:
  // an acknowledged name reads back identical, byte for byte.
  it("takes NUL bytes and odd Unicode in every string field without ERR_INTERNAL, storing exactly what it acknowledges", async () => {
    let tried = 0;
    for (const [label, text] of Object.entries(ODD_STRINGS)) {
      for (const field of ["name", "description"] as const) {
        const before = snapshot();
        const created = await callTool(`create ${field}: ${label}`, "create_api_key", { name: "odd", [field]: text });
        tried += 1;
        if (created.isError) {
          expect(snapshot(), `refused create (${field}: ${label}) changed nothing`).toBe(before);
        } else {
          const key = (created.structuredContent as { key: Json }).key;
          expect(key[field], `${field}: ${label} echoed`).toBe(field === "name" ? text.trim() : text);
          const read = await callTool(`get after ${label}`, "get_api_key", { key_id: key.key_id });
          expect((read.structuredContent as { key: Json }).key[field], `${field}: ${label} stored`).toBe(key[field]);
        }
        const updateBefore = snapshot();
        const updated = await callTool(`update ${field}: ${label}`, "update_api_key", { key_id: keyId, [field]: text });
        tried += 1;
        if (updated.isError) {
          expect(snapshot(), `refused update (${field}: ${label}) changed nothing`).toBe(updateBefore);
        } else {
          const read = await callTool(`get after update ${label}`, "get_api_key", { key_id: keyId });
          expect((read.structuredContent as { key: Json }).key[field]).toBe((updated.structuredContent as { key: Json }).key[field]);
        }
      }
      for (const [tool, field] of [
        ["get_api_key", "key_id"],
        ["delete_api_key", "key_id"],
        ["list_api_keys", "cursor"],
        ["list_api_keys", "status"],
        ["create_api_key", "expiration"],
        ["create_api_key", "environment"],
        ["list_api_keys", "token"],
        ["list_api_keys", "expires_within"],
        ["verify_api_key", "api_key"],
        ["rotate_api_key", "grace_period"],
        ["list_audit_events", "cursor"],
        ["list_audit_events", "since"],
      ] as const) {
        const before = snapshot();
        const args: Json =
          tool === "create_api_key" ? { name: "odd", [field]: text } : tool === "rotate_api_key" ? { key_id: keyId, [field]: text } : { [field]: text };
        const result = await callTool(`${tool}.${field}: ${label}`, tool, args);
        tried += 1;
        if (result.isError) expect(snapshot(), `${tool}.${field}: ${label} changed nothing`).toBe(before);
        // None of them is a key: answered as such, and a check that finds no key counts no use.
        if (tool === "verify_api_key" && !result.isError) {
          expect(result.structuredContent, `verify_api_key.api_key: ${label}`).toEqual({ valid: false, code: "MALFORMED" });
          expect(snapshot()).toBe(before);
        }
      }
    }
    recordFigures("hostile-stdin.odd-strings", { calls: tried, strings: Object.keys(ODD_STRINGS).length });
  });

  // One such line held the server 25 s for 90 KB (minutes near the limit): an unknown key was
  // logged in the SDK's message, which repeats it about 8 times, through a redaction pattern that
  // backtracked from every position. Each line here is a worst case for some part of the path
  // from stdin to stderr; the server must answer a ping promptly after each, and log no secret.
  it("answers a ping promptly after each of the worst lines up to the 1 MiB limit, and logs no secret", async () => {
    const secrets = [plaintext, generateApiKey("publishable", "test"), await merchantToken("merchant_other", "user_other"), ...SPACED_HEADERS.map(([, header]) => tokenWithHeader(header)), await encryptedToken()];
    /** A message whose one unknown top-level key is `name`, filled to just under the line limit. */
    const unknownKey = (unit: string, tail = "") => {
      const head = '{"jsonrpc":"2.0","id":"hostile","method":"ping",';
      const room = MAX_MESSAGE_BYTES - 64 - head.length - JSON.stringify(tail).length;
      return `${head}${JSON.stringify(unit.repeat(Math.floor(room / (JSON.stringify(unit).length - 2))) + tail)}:1}`;
    };
    // Secrets first, then as many 14-character entries (`"eyJ000001":1,`) as fit.
    const many: Json = { jsonrpc: "2.0", id: "many", method: "ping", ...Object.fromEntries(secrets.map((secret, i) => [`k${i}_${secret}`, 1])) };
    const fit = Math.floor((MAX_MESSAGE_BYTES - 64 - JSON.stringify(many).length) / 14);
    for (let i = 0; i < fit; i++) many[`eyJ${String(i).padStart(6, "0")}`] = 1;
    const longLines: [string, string][] = [
      ["an unknown key: a JWT header repeated, no dot", unknownKey("eyJ")],
      ["an unknown key: a JWT header repeated, then a secret", unknownKey("eyJ", `_${plaintext}`)],
      ["an unknown key: base64url whitespace, then dots", unknownKey("ICAg", ".x.y")],
      ["an unknown key: key prefixes with short bodies", unknownKey("sk_live_abcd_")],
      ["an unknown key: backslashes", unknownKey("\\")],
      ["an unknown key: escapes as text", unknownKey("\\u0065y")],
      ["an unknown key: escaped dots as text", unknownKey("eyJ\\u002e")],
      ["many unknown keys, secrets first", JSON.stringify(many)],
      ["not JSON: an unterminated string of JWT headers", `{"a":"${"eyJ".repeat((MAX_MESSAGE_BYTES - 100) / 3)}`],
    ];
    // Short unknown keys are logged whole: each secret after a letter, a digit, `_`, a newline, a
    // quote, escape text; and with one of its characters written as escape text.
    const places = [
      (s: string) => `extra_${s}`,
      (s: string) => `a${s}`,
      (s: string) => `7${s}`,
      (s: string) => `x\n${s}`,
      (s: string) => `"${s}"`,
      (s: string) => `\\u0022${s}`,
      (s: string) => `${s.slice(0, 12)}\\u${s.charCodeAt(12).toString(16).padStart(4, "0")}${s.slice(13)}`,
    ];
    const shortLines = secrets.flatMap((secret, i) =>
      places.map((place, j): [string, string] => [`secret ${i} in place ${j}`, `{"jsonrpc":"2.0","id":"s","method":"ping",${JSON.stringify(place(secret))}:1}`]),
    );
    // A valid request for an unknown method: answered with an error, not logged.
    const unknownMethod = `{"jsonrpc":"2.0","id":"method","method":${JSON.stringify("eyJ".repeat((MAX_MESSAGE_BYTES - 100) / 3))}}`;
    for (const [label, line] of longLines) expect(Buffer.byteLength(line), label).toBeGreaterThan(MAX_MESSAGE_BYTES - 4096);
    for (const [label, line] of longLines) expect(Buffer.byteLength(line) + 1, label).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);

    const logged = () => parseLines(server.stderrLines).filter((log) => log.msg === "protocol_error").length;
    let slowest = 0;
    const pingAfter = async (label: string) => {
      const started = Date.now();
      const reply = await rpc.request("ping", undefined, 5_000).catch((error: Error) => {
        throw new Error(`no ping answer within 5 s after ${label}: ${error.message}`);
      });
      expect(reply.result, label).toEqual({});
      slowest = Math.max(slowest, Date.now() - started);
    };
    for (const [label, line] of [...longLines, ...shortLines]) {
      hostileLines += 1;
      const before = logged();
      server.send(line);
      // The line is logged (built and written up to 50 ms later, off the reply's path) before
      // the ping: the ping must find the server free after the logging too.
      await server.waitForStderr(() => logged() > before, 5_000).catch(() => {
        throw new Error(`no protocol_error line within 5 s after ${label}`);
      });
      await pingAfter(label);
    }
    hostileLines += 1;
    server.send(unknownMethod);
    await server.response("method", 5_000);
    await pingAfter("an unknown method of 1 MiB");
    recordFigures("hostile-stdin.worst-lines", { long_lines: longLines.length + 1, short_lines: shortLines.length, slowest_ping_ms: slowest });

    for (const line of server.stderrLines) {
      expect(Buffer.byteLength(line)).toBeLessThanOrEqual(MAX_LINE_BYTES);
      for (const secret of secrets) {
        expect(line.includes(secret.slice(13, 26)) || line.includes(secret.slice(-13)), "a secret reached stderr").toBe(false);
      }
    }
  });

  it("wrote only JSON-RPC on stdout and short JSON log lines on stderr, with no internal errors", async () => {
    // Every line so far: the server writes its log at most 50 ms late, and all of it on exit.
    server.child.stdin.end();
    await server.exited;
    for (const message of parseLines(server.stdoutLines)) expect(message.jsonrpc).toBe("2.0");
    const logs = parseLines(server.stderrLines);
    expect(logs.filter((log) => log.level === "error")).toEqual([]);
    expect(server.stderrLines.every((line) => line.length < 8192)).toBe(true);
    expect(results.filter((result) => /ERR_INTERNAL/.test(result.text))).toEqual([]);
    recordFigures("hostile-stdin", { hostile_lines: hostileLines, tool_calls: results.length, internal_errors: 0, exits: 0 });
  });
});

/** Whether a value has a JSON type the property's schema allows (the test wants wrong types only). */
function accepts(schema: Json, value: unknown): boolean {
  const type = value === null ? "null" : Array.isArray(value) ? "array" : typeof value === "number" ? (Number.isInteger(value) ? "integer" : "number") : typeof value;
  const allowed = new Set<string>();
  const collect = (s: Json) => {
    if (typeof s.type === "string") allowed.add(s.type);
    if (Array.isArray(s.type)) for (const t of s.type) allowed.add(t as string);
    if (Array.isArray(s.enum)) allowed.add("string");
    for (const sub of [...((s.anyOf as Json[]) ?? []), ...((s.oneOf as Json[]) ?? [])]) collect(sub);
  };
  collect(schema);
  if (allowed.has("number")) allowed.add("integer");
  return allowed.has(type);
}
