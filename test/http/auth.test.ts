import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SignJWT } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { rows } from "../helpers/db.js";
import { bearer, rawRequest, rpc, startHttpTestServer, toolCall, type HttpTestServer } from "../helpers/http.js";
import { publicJwk, startJwksServer } from "../helpers/jwks-server.js";
import { rsaKeyPair } from "../helpers/key-pairs.js";
import { merchantToken, READ_WRITE, signToken } from "../helpers/tokens.js";

const OTHER_SECRET = "not-the-server-secret-but-32-bytes-or-more";

let server: HttpTestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const metadataUrl = (s: HttpTestServer) => `${s.origin}/.well-known/oauth-protected-resource/mcp`;

function denials(s: HttpTestServer) {
  return rows(s.db!, "audit_events")
    .filter((row) => row.action === "auth.denied")
    .map((row) => ({ tool: row.tool, reason: row.reason, tenant: row.tenant_id, actor: row.actor, key: row.key_id }));
}

describe("HTTP authentication: 401 and its challenge", () => {
  it("answers a request without a token with a bare challenge naming the metadata", async () => {
    server = await startHttpTestServer();
    const response = await rawRequest(server.origin, { body: rpc("tools/list") });
    expect(response.status).toBe(401);
    expect(response.headers["www-authenticate"]).toBe(`Bearer resource_metadata="${metadataUrl(server)}"`);
    expect(denials(server)).toEqual([{ tool: "tools/list", reason: "ERR_AUTH_MISSING", tenant: null, actor: null, key: null }]);
  });

  it.each([
    ["a badly signed token", () => merchantToken("merchant_a", "alice", undefined, { secret: OTHER_SECRET }), "ERR_AUTH_INVALID"],
    ["an expired token", () => merchantToken("merchant_a", "alice", undefined, { now: Math.floor(Date.now() / 1000) - 7200, ttl: 3600 }), "ERR_AUTH_EXPIRED"],
    ["a malformed token", async () => "not-a-jwt", "ERR_AUTH_INVALID"],
    ["a token without exp", () => merchantToken("merchant_a", "alice", undefined, { ttl: null }), "ERR_AUTH_INVALID"],
  ])("answers %s with 401 invalid_token, audited", async (_label, mint, reason) => {
    server = await startHttpTestServer();
    const token = await mint();
    const keyId = "key_AAAAAAAAAAAAAAAAAAAA";
    const response = await rawRequest(server.origin, { headers: bearer(token), body: toolCall("get_api_key", { key_id: keyId }) });
    expect(response.status).toBe(401);
    const challenge = response.headers["www-authenticate"] as string;
    expect(challenge).toMatch(/^Bearer error="invalid_token", error_description="[^"]+", resource_metadata="([^"]+)"$/);
    expect(challenge).toContain(`resource_metadata="${metadataUrl(server)}"`);
    expect(response.body).not.toContain(token);
    expect(denials(server)).toEqual([{ tool: "get_api_key", reason, tenant: null, actor: null, key: keyId }]);
  });

  it("needs a valid token for tools/list and initialize", async () => {
    server = await startHttpTestServer();
    const bad = await merchantToken("merchant_a", "alice", undefined, { secret: OTHER_SECRET });
    for (const body of [rpc("tools/list"), rpc("initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "x", version: "1" } })]) {
      expect((await rawRequest(server.origin, { body })).status).toBe(401);
      expect((await rawRequest(server.origin, { headers: bearer(bad), body })).status).toBe(401);
    }
    await expect(server.connect(undefined)).rejects.toSatisfy((error) => error instanceof StreamableHTTPError && error.code === 401);
    expect((await rawRequest(server.origin, { headers: bearer(await merchantToken("merchant_a")), body: rpc("tools/list") })).status).toBe(200);
  });

  it("refuses a token not bound to a merchant with 401, audited with its subject", async () => {
    server = await startHttpTestServer();
    const token = await signToken({ sub: "pre-login", scope: "api_keys:read" });
    const response = await rawRequest(server.origin, { headers: bearer(token), body: rpc("tools/list") });
    expect(response.status).toBe(401);
    expect(response.headers["www-authenticate"]).toMatch(/error="invalid_token".*not bound to a merchant/);
    expect(denials(server)).toEqual([{ tool: "tools/list", reason: "ERR_FORBIDDEN", tenant: null, actor: "pre-login", key: null }]);
  });
});

describe("HTTP authorisation: 403 insufficient_scope", () => {
  it("answers a read-only token calling a write tool with the scope to ask for, audited, changing nothing", async () => {
    server = await startHttpTestServer();
    const reader = await merchantToken("merchant_a", "reader", "api_keys:read");
    const response = await rawRequest(server.origin, { headers: bearer(reader), body: toolCall("create_api_key", { name: "nope" }) });
    expect(response.status).toBe(403);
    expect(response.headers["www-authenticate"]).toMatch(
      new RegExp(`^Bearer error="insufficient_scope", scope="api_keys:write", resource_metadata="${metadataUrl(server)}", error_description="[^"]+"$`),
    );
    expect(response.json).toMatchObject({ error: "insufficient_scope" });
    expect(rows(server.db!, "api_keys")).toEqual([]);
    expect(denials(server)).toEqual([{ tool: "create_api_key", reason: "ERR_FORBIDDEN", tenant: "merchant_a", actor: "reader", key: null }]);

    // The same token reads; the SDK client sees the 403 as an HTTP error.
    const client = await server.connect(reader);
    expect((await client.callTool({ name: "list_api_keys", arguments: {} })).isError).toBeFalsy();
    await expect(client.callTool({ name: "delete_api_key", arguments: { key_id: "key_AAAAAAAAAAAAAAAAAAAA" } })).rejects.toSatisfy(
      (error) => error instanceof StreamableHTTPError && error.code === 403,
    );
    expect(denials(server).at(-1)).toEqual({ tool: "delete_api_key", reason: "ERR_FORBIDDEN", tenant: "merchant_a", actor: "reader", key: "key_AAAAAAAAAAAAAAAAAAAA" });
  });

  it("charges refusals to the user's rate limit as stdio does: past it, ERR_RATE_LIMITED and no more audit rows", async () => {
    server = await startHttpTestServer({ env: { API_KEYS_MCP_RATE_LIMIT_WRITE: "2" } });
    const reader = await merchantToken("merchant_a", "reader", "api_keys:read");
    for (let i = 0; i < 2; i += 1) {
      expect((await rawRequest(server.origin, { headers: bearer(reader), body: toolCall("create_api_key", { name: "no" }) })).status).toBe(403);
    }
    const limited = await rawRequest(server.origin, { headers: bearer(reader), body: toolCall("create_api_key", { name: "no" }) });
    expect(limited.status).toBe(200);
    expect(limited.json.result).toMatchObject({ isError: true });
    expect(limited.json.result.content[0].text).toMatch(/^ERR_RATE_LIMITED: Too many write calls/);
    expect(denials(server).map((row) => row.reason)).toEqual(["ERR_FORBIDDEN", "ERR_FORBIDDEN"]);
    // Reads have their own bucket.
    expect((await rawRequest(server.origin, { headers: bearer(reader), body: toolCall("list_api_keys") })).status).toBe(200);
  });

  it("names api_keys:read for a token with no permission calling a read tool, and lets it list the tools", async () => {
    server = await startHttpTestServer();
    const none = await signToken({ sub: "nobody", merchant_id: "merchant_a", role_id: "profile_view_only" });
    const response = await rawRequest(server.origin, { headers: bearer(none), body: toolCall("list_api_keys") });
    expect(response.status).toBe(403);
    expect(response.headers["www-authenticate"]).toContain('scope="api_keys:read"');
    expect((await rawRequest(server.origin, { headers: bearer(none), body: rpc("tools/list") })).status).toBe(200);
  });

  it("checks every call of a batch", async () => {
    server = await startHttpTestServer();
    const reader = await merchantToken("merchant_a", "reader", "api_keys:read");
    const body = JSON.stringify([JSON.parse(toolCall("list_api_keys", {}, 1)), JSON.parse(toolCall("create_api_key", { name: "x" }, 2))]);
    const response = await rawRequest(server.origin, { headers: bearer(reader), body });
    expect(response.status).toBe(403);
    expect(rows(server.db!, "api_keys")).toEqual([]);
  });
});

describe("RFC 9728 protected resource metadata", () => {
  it("is served with and without /mcp, without a token, naming the resource, scopes and header bearer", async () => {
    server = await startHttpTestServer();
    for (const path of ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]) {
      const response = await rawRequest(server.origin, { method: "GET", path });
      expect(response.status).toBe(200);
      expect(response.json).toEqual({
        resource: server.url,
        scopes_supported: ["api_keys:read", "api_keys:write"],
        bearer_methods_supported: ["header"],
        resource_name: "api-keys-mcp",
      });
    }
  });

  it("names the configured resource URL and authorization servers, and serves at the resource's path", async () => {
    server = await startHttpTestServer({
      env: {
        API_KEYS_MCP_RESOURCE_URL: "https://keys.example.com/tools/mcp",
        API_KEYS_MCP_AUTHORIZATION_SERVERS: "https://auth.example.com, https://login.example.org/realms/x",
      },
    });
    for (const path of ["/.well-known/oauth-protected-resource/tools/mcp", "/.well-known/oauth-protected-resource/mcp"]) {
      const response = await rawRequest(server.origin, { method: "GET", path });
      expect(response.json).toMatchObject({
        resource: "https://keys.example.com/tools/mcp",
        authorization_servers: ["https://auth.example.com", "https://login.example.org/realms/x"],
      });
    }
    const challenge = await rawRequest(server.origin, { body: rpc("tools/list") });
    expect(challenge.headers["www-authenticate"]).toBe('Bearer resource_metadata="https://keys.example.com/.well-known/oauth-protected-resource/tools/mcp"');
  });
});

describe("failed authentications are limited per client address", () => {
  it("answers 429 with Retry-After to one address while another still gets in", async () => {
    server = await startHttpTestServer({ env: { API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES: "3" } });
    const bad = await merchantToken("merchant_a", "alice", undefined, { secret: OTHER_SECRET });
    const good = await merchantToken("merchant_a", "alice");
    const attacker = { localAddress: "127.0.0.2" };
    for (let i = 0; i < 3; i += 1) {
      expect((await rawRequest(server.origin, { ...attacker, headers: bearer(bad), body: rpc("tools/list") })).status).toBe(401);
    }
    const limited = await rawRequest(server.origin, { ...attacker, headers: bearer(bad), body: rpc("tools/list") });
    expect(limited.status).toBe(429);
    expect(limited.headers["retry-after"]).toBe("20");
    // Past the limit nothing is verified: a request without a token, or a good one, waits too.
    expect((await rawRequest(server.origin, { ...attacker, body: rpc("tools/list") })).status).toBe(429);
    expect((await rawRequest(server.origin, { ...attacker, headers: bearer(good), body: rpc("tools/list") })).status).toBe(429);

    // Another address: its own failures are its own, and a good token gets in.
    expect((await rawRequest(server.origin, { localAddress: "127.0.0.1", headers: bearer(bad), body: rpc("tools/list") })).status).toBe(401);
    expect((await rawRequest(server.origin, { localAddress: "127.0.0.1", headers: bearer(good), body: rpc("tools/list") })).status).toBe(200);
    // The three failures were audited; the refusals past the limit were not (no flood of rows).
    expect(denials(server).map((row) => row.reason)).toEqual(["ERR_AUTH_INVALID", "ERR_AUTH_INVALID", "ERR_AUTH_INVALID", "ERR_AUTH_INVALID"]);

    server.clock.advance(20_000);
    expect((await rawRequest(server.origin, { ...attacker, headers: bearer(good), body: rpc("tools/list") })).status).toBe(200);
  });

  it("ignores X-Forwarded-For unless the peer is a trusted proxy", async () => {
    server = await startHttpTestServer({ env: { API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES: "1" } });
    const bad = await merchantToken("merchant_a", "alice", undefined, { secret: OTHER_SECRET });
    const spoof = (n: number) => ({ headers: { ...bearer(bad), "X-Forwarded-For": `203.0.113.${n}` }, body: rpc("tools/list") });
    expect((await rawRequest(server.origin, spoof(1))).status).toBe(401);
    expect((await rawRequest(server.origin, spoof(2))).status).toBe(429);
  });

  it("counts each client behind a trusted proxy by its forwarded address", async () => {
    server = await startHttpTestServer({ env: { API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES: "1", API_KEYS_MCP_TRUST_PROXY: "loopback" } });
    const bad = await merchantToken("merchant_a", "alice", undefined, { secret: OTHER_SECRET });
    const from = (address: string) => ({ headers: { ...bearer(bad), "X-Forwarded-For": address }, body: rpc("tools/list") });
    expect((await rawRequest(server.origin, from("203.0.113.1"))).status).toBe(401);
    expect((await rawRequest(server.origin, from("203.0.113.1"))).status).toBe(429);
    expect((await rawRequest(server.origin, from("203.0.113.2"))).status).toBe(401);
    // IPv6 clients are counted by their /64.
    expect((await rawRequest(server.origin, from("2001:db8:1:2::1"))).status).toBe(401);
    expect((await rawRequest(server.origin, from("2001:db8:1:2:ffff::9"))).status).toBe(429);
    expect((await rawRequest(server.origin, from("2001:db8:1:3::1"))).status).toBe(401);
  });
});

describe("HTTP authentication when the issuer cannot answer", () => {
  it("answers 503 with Retry-After while the issuer's JWKS is unreachable, audits nothing, and 200 once it is back", async () => {
    const { privateKey, publicKey } = rsaKeyPair(0);
    const jwks = await startJwksServer([{ ...(await publicJwk(publicKey)), kid: "k1", alg: "RS256", use: "sig" }]);
    try {
      server = await startHttpTestServer({ env: { API_KEYS_MCP_JWT_SECRET: undefined, API_KEYS_MCP_JWKS_URL: jwks.url } });
      const now = Math.floor(Date.now() / 1000);
      const token = await new SignJWT({ sub: "alice", merchant_id: "merchant_a", scope: READ_WRITE, iat: now, exp: now + 3600 })
        .setProtectedHeader({ alg: "RS256", kid: "k1" })
        .sign(privateKey);
      const request = { headers: bearer(token), body: toolCall("list_api_keys") };

      for (const outage of [() => jwks.stop(), () => void (jwks.mode = "error500")]) {
        await outage();
        const response = await rawRequest(server.origin, request);
        expect(response.status).toBe(503);
        expect(response.headers["retry-after"]).toBe("2");
        expect(response.json.error.message).toMatch(/^ERR_BUSY: The issuer's key set \(JWKS\) could not be fetched/);
        expect(response.body).not.toContain(token);
        // Not the client's failure: no denial recorded, nothing counted against its address.
        expect(denials(server)).toEqual([]);
        await jwks.start().catch(() => {});
        jwks.mode = "ok";
      }
      expect((await rawRequest(server.origin, request)).status).toBe(200);
    } finally {
      await jwks.close();
    }
  });
});
