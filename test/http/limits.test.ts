import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { rows } from "../helpers/db.js";
import { bearer, rawRequest, rpc, startHttpTestServer, toolCall, type HttpTestServer } from "../helpers/http.js";
import { within } from "../helpers/spawn.js";
import { merchantToken } from "../helpers/tokens.js";

let server: HttpTestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const MiB = 1024 * 1024;

/** A create_api_key call padded with whitespace to exactly `bytes` bytes: valid JSON, were it read. */
function paddedCreate(bytes: number): string {
  const body = toolCall("create_api_key", { name: "padded" });
  return body + " ".repeat(bytes - Buffer.byteLength(body));
}

describe("DNS rebinding: Host and Origin", () => {
  it("refuses a foreign Host with 403, before authentication", async () => {
    server = await startHttpTestServer();
    const token = await merchantToken("merchant_a");
    const foreign = await rawRequest(server.origin, { headers: { ...bearer(token), Host: "attacker.example:80" }, body: rpc("tools/list") });
    expect(foreign.status).toBe(403);
    for (const host of ["localhost", "127.0.0.1", "[::1]"]) {
      const port = new URL(server.origin).port;
      expect((await rawRequest(server.origin, { headers: { ...bearer(token), Host: `${host}:${port}` }, body: rpc("tools/list") })).status).toBe(200);
    }
    // The metadata document is behind the same check.
    expect((await rawRequest(server.origin, { method: "GET", path: "/.well-known/oauth-protected-resource", headers: { Host: "attacker.example" } })).status).toBe(403);
  });

  it("accepts the names in API_KEYS_MCP_ALLOWED_HOSTS", async () => {
    server = await startHttpTestServer({ env: { API_KEYS_MCP_ALLOWED_HOSTS: "keys.example.com" } });
    const token = await merchantToken("merchant_a");
    expect((await rawRequest(server.origin, { headers: { ...bearer(token), Host: "keys.example.com" }, body: rpc("tools/list") })).status).toBe(200);
    expect((await rawRequest(server.origin, { headers: { ...bearer(token), Host: "other.example.com" }, body: rpc("tools/list") })).status).toBe(403);
  });

  it("refuses any Origin by default, even with a valid token, and changes nothing", async () => {
    server = await startHttpTestServer();
    const token = await merchantToken("merchant_a");
    const response = await rawRequest(server.origin, {
      headers: { ...bearer(token), Origin: "https://evil.example" },
      body: toolCall("create_api_key", { name: "from a web page" }),
    });
    expect(response.status).toBe(403);
    expect(response.headers["access-control-allow-origin"]).toBeUndefined();
    expect(rows(server.db!, "api_keys")).toEqual([]);
  });

  it("lets an allowed origin in, with the CORS answers a browser needs", async () => {
    server = await startHttpTestServer({ env: { API_KEYS_MCP_ALLOWED_ORIGINS: "https://app.example.com" } });
    const origin = "https://app.example.com";
    const preflight = await rawRequest(server.origin, {
      method: "OPTIONS",
      headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers).toMatchObject({ "access-control-allow-origin": origin, "access-control-allow-methods": "POST" });
    expect(preflight.headers["access-control-allow-headers"]).toMatch(/Authorization/);

    const token = await merchantToken("merchant_a");
    const call = await rawRequest(server.origin, { headers: { ...bearer(token), Origin: origin }, body: rpc("tools/list") });
    expect(call.status).toBe(200);
    expect(call.headers["access-control-allow-origin"]).toBe(origin);
    const challenge = await rawRequest(server.origin, { headers: { Origin: origin }, body: rpc("tools/list") });
    expect(challenge.status).toBe(401);
    expect(challenge.headers["access-control-expose-headers"]).toMatch(/WWW-Authenticate/);

    expect((await rawRequest(server.origin, { headers: { ...bearer(token), Origin: "https://app.example.com.evil.example" }, body: rpc("tools/list") })).status).toBe(403);
  });
});

describe("request limits", () => {
  it("answers 413 for a body over 1 MiB and reads nothing of it", async () => {
    server = await startHttpTestServer();
    const token = await merchantToken("merchant_a");
    const response = await rawRequest(server.origin, { headers: bearer(token), body: paddedCreate(MiB + 1) });
    expect(response.status).toBe(413);
    expect(response.headers.connection).toBe("close");
    // Not authenticated, not parsed, not called: no denial, no key.
    expect(rows(server.db!, "audit_events")).toEqual([]);
    expect(rows(server.db!, "api_keys")).toEqual([]);
  });

  it("answers 413 for a body over 1 MiB sent without a length", async () => {
    server = await startHttpTestServer();
    const token = await merchantToken("merchant_a");
    const response = await rawRequest(server.origin, { headers: bearer(token), body: paddedCreate(MiB + 64 * 1024), chunked: true });
    expect(response.status).toBe(413);
    expect(rows(server.db!, "api_keys")).toEqual([]);
  });

  it("reads a body of exactly 1 MiB", async () => {
    server = await startHttpTestServer();
    const token = await merchantToken("merchant_a");
    const response = await rawRequest(server.origin, { headers: bearer(token), body: paddedCreate(MiB) });
    expect(response.status).toBe(200);
    expect(rows(server.db!, "api_keys")).toHaveLength(1);
  });

  it("answers a body that is not JSON with a JSON-RPC parse error, never a stack", async () => {
    server = await startHttpTestServer();
    const response = await rawRequest(server.origin, { headers: bearer(await merchantToken("merchant_a")), body: '{"jsonrpc": "2.0", ' });
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ error: { code: -32700 } });
    expect(response.body).not.toMatch(/at .*\.js|node_modules/);
  });

  it("answers other paths with a JSON 404", async () => {
    server = await startHttpTestServer();
    const response = await rawRequest(server.origin, { method: "GET", path: "/admin" });
    expect(response.status).toBe(404);
    expect(response.json).toMatchObject({ error: { message: "Not found." } });
  });
});

describe("slow clients", () => {
  /** Opens a connection, writes `text`, and resolves with what the server sends until it closes. */
  function stall(origin: string, text: string): Promise<{ answer: string; closed: boolean }> {
    const { hostname, port } = new URL(origin);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => socket.write(text));
      let answer = "";
      socket.on("data", (chunk) => (answer += chunk.toString("utf8")));
      socket.on("close", () => resolve({ answer, closed: true }));
      socket.on("error", reject);
    });
  }

  it("closes a connection whose headers never finish, and one whose body never arrives", async () => {
    server = await startHttpTestServer({ timeouts: { headersMs: 300, requestMs: 600 } });
    const token = await merchantToken("merchant_a");
    const headers = stall(server.origin, "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n");
    const body = stall(
      server.origin,
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{"jsonrpc":`,
    );
    // Node checks the timeouts once a second: generous bounds, not a timing assertion.
    for (const outcome of await within(Promise.all([headers, body]), 10_000, "the server closing stalled connections")) {
      expect(outcome.closed).toBe(true);
      expect(outcome.answer).toMatch(/^HTTP\/1\.1 408 /);
    }
    // The server still answers everyone else.
    expect((await rawRequest(server.origin, { headers: bearer(token), body: rpc("tools/list") })).status).toBe(200);
  });
});

describe("GET /healthz", () => {
  it("answers 200 without auth, whatever the Host, and says nothing else", async () => {
    server = await startHttpTestServer();
    const response = await rawRequest(server.origin, { method: "GET", path: "/healthz", headers: { Host: "10.1.2.3:8787" } });
    expect(response.status).toBe(200);
    expect(response.json).toEqual({ status: "ok" });
  });

  it("answers 503 while the server cannot serve, and /mcp says which setting is missing", async () => {
    server = await startHttpTestServer({ env: { API_KEYS_MCP_JWT_SECRET: undefined } });
    expect((await rawRequest(server.origin, { method: "GET", path: "/healthz" })).json).toEqual({ status: "unavailable" });
    const call = await rawRequest(server.origin, { body: rpc("tools/list") });
    expect(call.status).toBe(503);
    expect(call.json.error.message).toMatch(/^ERR_CONFIG: .*API_KEYS_MCP_JWT_SECRET/);
  });
});
