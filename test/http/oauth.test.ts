import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rows } from "../helpers/db.js";
import { bearer, rawRequest, rpc, startHttpTestServer, type HttpTestServer } from "../helpers/http.js";

/** What clients are told this server is (behind a proxy, say); tokens must be issued for it. */
const RESOURCE = "https://keys.example.test/mcp";
const OTHER_RESOURCE = "https://payments.example.test/mcp";
const CLIENT = { id: "deploy-agent", secret: "a-client-secret-for-the-test-only-0123456789" };

/**
 * A real OAuth 2 authorization server (oidc-provider) on 127.0.0.1: client credentials, resource
 * indicators (RFC 8707), JWT access tokens signed with ES256 and published at its JWKS.
 */
async function startAuthorizationServer(): Promise<{ issuer: string; server: Server }> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT.id,
        client_secret: CLIENT.secret,
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        scope: "api_keys:read api_keys:write",
        // The only key is an ES256 one; the default (RS256) would make the client invalid.
        id_token_signed_response_alg: "ES256",
      },
    ],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: "as-key-1", alg: "ES256", use: "sig" }] },
    scopes: ["api_keys:read", "api_keys:write"],
    ttl: { ClientCredentials: 300 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: (_ctx, resource) => ({
          scope: "api_keys:read api_keys:write",
          audience: resource,
          accessTokenTTL: 300,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "ES256" } },
        }),
      },
    },
    // The merchant the client acts for, as this server's tenant claim.
    extraTokenClaims: () => ({ merchant_id: "merchant_oauth" }),
  });
  server.on("request", provider.callback());
  return { issuer, server };
}

/** A client-credentials grant for `resource`, as an agent's deployment would do it. */
async function accessToken(issuer: string, resource: string, scope: string): Promise<string> {
  const response = await fetch(`${issuer}/token`, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-www-form-urlencoded",
      Authorization: `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString("base64")}`,
    },
    body: new URLSearchParams({ grant_type: "client_credentials", resource, scope }),
  });
  const body = (await response.json()) as { access_token?: string; error?: string };
  if (!body.access_token) throw new Error(`token request failed: ${JSON.stringify(body)}`);
  return body.access_token;
}

describe("OAuth end to end: tokens from a real authorization server, verified through its JWKS", () => {
  let as: { issuer: string; server: Server };
  let server: HttpTestServer;

  beforeAll(async () => {
    as = await startAuthorizationServer();
    server = await startHttpTestServer({
      env: {
        API_KEYS_MCP_JWT_SECRET: undefined,
        API_KEYS_MCP_JWKS_URL: `${as.issuer}/jwks`,
        API_KEYS_MCP_JWT_ISSUER: as.issuer,
        API_KEYS_MCP_RESOURCE_URL: RESOURCE,
        API_KEYS_MCP_AUTHORIZATION_SERVERS: as.issuer,
      },
    });
  });
  afterAll(async () => {
    await server?.close();
    as?.server.closeAllConnections();
    await new Promise((resolve) => as?.server.close(resolve));
  });

  it("advertises the authorization server in the metadata document", async () => {
    const metadata = await rawRequest(server.origin, { method: "GET", path: "/.well-known/oauth-protected-resource/mcp" });
    expect(metadata.json).toMatchObject({ resource: RESOURCE, authorization_servers: [as.issuer] });
  });

  it("accepts a token issued for this resource: lists and calls the tools as the client", async () => {
    const token = await accessToken(as.issuer, RESOURCE, "api_keys:read api_keys:write");
    const client = await server.connect(token);
    expect((await client.listTools()).tools).toHaveLength(8);
    const created = await client.callTool({ name: "create_api_key", arguments: { name: "issued through OAuth" } });
    expect(created.isError).toBeFalsy();
    const audit = rows(server.db!, "audit_events").at(-1)!;
    expect(audit).toMatchObject({ action: "api_key.created", tenant_id: "merchant_oauth", actor: CLIENT.id });
  });

  it("refuses a token the same authorization server issued for another resource", async () => {
    const token = await accessToken(as.issuer, OTHER_RESOURCE, "api_keys:read api_keys:write");
    const response = await rawRequest(server.origin, { headers: bearer(token), body: rpc("tools/list") });
    expect(response.status).toBe(401);
    expect(response.headers["www-authenticate"]).toMatch(/error="invalid_token".*audience/);
    expect(rows(server.db!, "audit_events").at(-1)).toMatchObject({ action: "auth.denied", reason: "ERR_AUTH_INVALID" });
  });

  it("answers 403 insufficient_scope to a read-only grant calling a write tool", async () => {
    const token = await accessToken(as.issuer, RESOURCE, "api_keys:read");
    const response = await rawRequest(server.origin, {
      headers: bearer(token),
      body: rpc("tools/call", { name: "create_api_key", arguments: { name: "no" } }),
    });
    expect(response.status).toBe(403);
    expect(response.headers["www-authenticate"]).toContain('scope="api_keys:write"');
  });
});
