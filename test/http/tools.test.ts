import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { afterEach, describe, expect, it } from "vitest";
import { AppError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { createServer } from "../../src/server.js";
import { rows } from "../helpers/db.js";
import { bearer, rawRequest, rpc, startHttpTestServer, type HttpTestServer } from "../helpers/http.js";
import { startTestServer } from "../helpers/server.js";
import { merchantToken } from "../helpers/tokens.js";

let server: HttpTestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("MCP over Streamable HTTP: the tools", () => {
  it("works for every tool, each call a request of its own on the shared database", async () => {
    server = await startHttpTestServer();
    const token = await merchantToken("merchant_http", "alice");
    const client = await server.connect(token);
    const call = async (name: string, args: Record<string, unknown> = {}) => {
      const result = await client.callTool({ name, arguments: args });
      expect(result.isError, `${name}: ${JSON.stringify(result.content)}`).toBeFalsy();
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the fields asserted on
      return result.structuredContent as any;
    };

    const created = await call("create_api_key", { name: "checkout", environment: "live" });
    expect(created.api_key).toMatch(/^sk_live_[0-9A-Za-z]{32}$/);
    const keyId = created.key.key_id as string;
    expect((await call("list_api_keys")).keys.map((key: { key_id: string }) => key.key_id)).toEqual([keyId]);
    expect((await call("get_api_key", { key_id: keyId })).key.name).toBe("checkout");
    expect((await call("update_api_key", { key_id: keyId, name: "checkout v2" })).key.name).toBe("checkout v2");
    expect(await call("verify_api_key", { api_key: created.api_key })).toMatchObject({ valid: true, code: "VALID" });
    const rotated = await call("rotate_api_key", { key_id: keyId, grace_period: "1h" });
    expect(rotated.previous.key_id).toBe(keyId);
    expect((await call("delete_api_key", { key_id: rotated.key.key_id })).key.status).toBe("revoked");
    const events = await call("list_audit_events");
    expect(events.events.map((event: { action: string }) => event.action)).toEqual([
      "api_key.revoked",
      "api_key.rotated",
      "api_key.updated",
      "api_key.created",
    ]);
    // The actor is the bearer token's subject, the tenant its merchant.
    expect(new Set(rows(server.db!, "audit_events").map((row) => `${row.tenant_id}/${row.actor}`))).toEqual(new Set(["merchant_http/alice"]));
  });

  it("has no token argument in any input schema, where stdio has one", async () => {
    server = await startHttpTestServer();
    const client = await server.connect(await merchantToken("merchant_http"));
    const { tools } = await client.listTools();
    expect(tools).toHaveLength(8);
    for (const tool of tools) {
      const input = tool.inputSchema as { properties: Record<string, unknown>; additionalProperties?: unknown };
      expect(Object.keys(input.properties), tool.name).not.toContain("token");
      expect(input.additionalProperties).toBe(false);
    }

    const stdio = await startTestServer();
    try {
      const stdioTools = (await stdio.client.listTools()).tools;
      for (const tool of stdioTools) expect(Object.keys((tool.inputSchema as { properties: object }).properties)).toContain("token");
    } finally {
      await stdio.close();
    }
  });

  it("lists exactly what a server built for HTTP lists, though the list is built once per process", async () => {
    server = await startHttpTestServer();
    const overHttp = await (await server.connect(await merchantToken("merchant_http"))).listTools();
    const { server: fresh, close } = createServer({
      services: new AppError("ERR_CONFIG", "unused"),
      logger: createLogger({ level: "silent", write: () => undefined }),
      version: "0.0.0-test",
      credentials: { from: "transport" },
    });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const client = new Client({ name: "fresh", version: "0.0.0" });
    await fresh.connect(serverSide);
    await client.connect(clientSide);
    try {
      expect(overHttp).toEqual(await client.listTools());
    } finally {
      await client.close();
      await close();
    }
  });

  it("refuses a token argument: the caller is the bearer, never an argument", async () => {
    server = await startHttpTestServer();
    const other = await merchantToken("merchant_other", "mallory");
    const client = await server.connect(await merchantToken("merchant_http", "alice"));
    const result = await client.callTool({ name: "create_api_key", arguments: { name: "smuggled", token: other } });
    expect(result.isError).toBe(true);
    expect(rows(server.db!, "api_keys")).toEqual([]);
  });

  it("never acts with the operator's API_KEYS_MCP_TOKEN for a request without a token", async () => {
    server = await startHttpTestServer({ env: { API_KEYS_MCP_TOKEN: await merchantToken("merchant_operator", "operator") } });
    const response = await rawRequest(server.origin, { body: rpc("tools/call", { name: "create_api_key", arguments: { name: "x" } }) });
    expect(response.status).toBe(401);
    expect(rows(server.db!, "api_keys")).toEqual([]);
  });

  it("keeps tenants apart: another merchant's key is not found", async () => {
    server = await startHttpTestServer();
    const mine = await server.call(await merchantToken("merchant_a"), "create_api_key", { name: "a's key" });
    if (!mine.ok) throw new Error(mine.text);
    const theirs = await server.call(await merchantToken("merchant_b"), "get_api_key", { key_id: mine.data.key.key_id });
    expect(theirs.ok ? "OK" : theirs.code).toBe("ERR_NOT_FOUND");
  });

  it("applies the per-user rate limits as on stdio: ERR_RATE_LIMITED, a tool error", async () => {
    server = await startHttpTestServer({ env: { API_KEYS_MCP_RATE_LIMIT_READ: "2" } });
    const token = await merchantToken("merchant_http", "alice");
    const client = await server.connect(token);
    for (let i = 0; i < 2; i += 1) expect((await client.callTool({ name: "list_api_keys", arguments: {} })).isError).toBeFalsy();
    const limited = await client.callTool({ name: "list_api_keys", arguments: {} });
    expect(limited.isError).toBe(true);
    expect((limited.content as { text: string }[])[0]!.text).toMatch(/^ERR_RATE_LIMITED: .*Wait 30 seconds/);
    // Another user is not held back.
    const bob = await server.call(await merchantToken("merchant_http", "bob"), "list_api_keys");
    expect(bob.ok).toBe(true);
  });

  it("writes one http_request line per request with tenant and subject, and never the token", async () => {
    server = await startHttpTestServer();
    const token = await merchantToken("merchant_http", "alice");
    const response = await rawRequest(server.origin, { headers: bearer(token), body: rpc("tools/list") });
    expect(response.status).toBe(200);
    await rawRequest(server.origin, { headers: bearer(token.slice(0, -4) + "AAAA"), body: rpc("tools/list") });
    const lines = server.logs.filter((line) => line.msg === "http_request");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ method: "POST", path: "/mcp", status: 200, tenant: "merchant_http", subject: "alice", client: "127.0.0.1" });
    expect(lines[0]!.duration_ms).toEqual(expect.any(Number));
    expect(lines[1]).toMatchObject({ status: 401 });
    expect(lines[1]).not.toHaveProperty("tenant");
    for (const part of token.split(".")) expect(server.rawLogs.join("\n")).not.toContain(part);
  });

  it("answers 405 to GET and DELETE on /mcp: stateless, no stream and no session", async () => {
    server = await startHttpTestServer();
    for (const method of ["GET", "DELETE"]) {
      const response = await rawRequest(server.origin, { method });
      expect(response.status).toBe(405);
      expect(response.headers.allow).toBe("POST");
    }
    const answered = await rawRequest(server.origin, { headers: bearer(await merchantToken("m")), body: rpc("tools/list") });
    expect(answered.headers["mcp-session-id"]).toBeUndefined();
  });
});
