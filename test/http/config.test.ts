import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import type { Io } from "../../src/cli/io.js";
import { loadHttpConfig, withResourceAudience, type AuthConfig } from "../../src/config.js";
import { TEST_SECRET } from "../helpers/tokens.js";

describe("loadHttpConfig", () => {
  it("defaults to 127.0.0.1:8787 with nothing else allowed or advertised", () => {
    expect(loadHttpConfig({}, {})).toEqual({
      http: { host: "127.0.0.1", port: 8787, resourceUrl: undefined, authorizationServers: [], allowedHosts: [], allowedOrigins: [], trustProxy: [] },
      problems: [],
    });
  });

  it("reads every setting, the flags winning over the environment", () => {
    const { http, problems } = loadHttpConfig(
      {
        API_KEYS_MCP_HTTP_HOST: "0.0.0.0",
        API_KEYS_MCP_HTTP_PORT: "9000",
        API_KEYS_MCP_RESOURCE_URL: "https://keys.example.com/mcp",
        API_KEYS_MCP_AUTHORIZATION_SERVERS: "https://auth.example.com, https://login.example.org",
        API_KEYS_MCP_ALLOWED_HOSTS: "Keys.Example.com,[::1]",
        API_KEYS_MCP_ALLOWED_ORIGINS: "https://App.example.com",
        API_KEYS_MCP_TRUST_PROXY: "loopback, 10.0.0.0/8",
      },
      { port: "0" },
    );
    expect(problems).toEqual([]);
    expect(http).toEqual({
      host: "0.0.0.0",
      port: 0,
      resourceUrl: "https://keys.example.com/mcp",
      authorizationServers: ["https://auth.example.com", "https://login.example.org"],
      allowedHosts: ["keys.example.com", "[::1]"],
      allowedOrigins: ["https://app.example.com"],
      trustProxy: ["loopback", "10.0.0.0/8"],
    });
  });

  it.each([
    [{ API_KEYS_MCP_HTTP_HOST: "0.0.0.0" }, "API_KEYS_MCP_ALLOWED_HOSTS", /not a loopback address/],
    [{ API_KEYS_MCP_HTTP_HOST: "192.168.1.10" }, "API_KEYS_MCP_ALLOWED_HOSTS", /not a loopback address/],
    [{ API_KEYS_MCP_HTTP_PORT: "65536" }, "API_KEYS_MCP_HTTP_PORT", /0 to 65535/],
    [{ API_KEYS_MCP_HTTP_PORT: "80x" }, "API_KEYS_MCP_HTTP_PORT", /0 to 65535/],
    [{ API_KEYS_MCP_RESOURCE_URL: "keys.example.com/mcp" }, "API_KEYS_MCP_RESOURCE_URL", /absolute http or https URL/],
    [{ API_KEYS_MCP_RESOURCE_URL: "https://keys.example.com/mcp#x" }, "API_KEYS_MCP_RESOURCE_URL", /without a fragment/],
    [{ API_KEYS_MCP_AUTHORIZATION_SERVERS: "https://a.example, ftp://b.example" }, "API_KEYS_MCP_AUTHORIZATION_SERVERS", /issuer URL/],
    [{ API_KEYS_MCP_ALLOWED_HOSTS: "keys.example.com:443" }, "API_KEYS_MCP_ALLOWED_HOSTS", /without scheme or port/],
    [{ API_KEYS_MCP_ALLOWED_ORIGINS: "https://app.example.com/path" }, "API_KEYS_MCP_ALLOWED_ORIGINS", /no path/],
    [{ API_KEYS_MCP_ALLOWED_ORIGINS: "*" }, "API_KEYS_MCP_ALLOWED_ORIGINS", /an origin/],
    [{ API_KEYS_MCP_TRUST_PROXY: "everyone" }, "API_KEYS_MCP_TRUST_PROXY", /subnet/],
    [{ API_KEYS_MCP_TRUST_PROXY: "10.0.0.0/33" }, "API_KEYS_MCP_TRUST_PROXY", /subnet/],
  ])("reports %j as a problem with %s", (env, variable, message) => {
    const { problems } = loadHttpConfig(env, {});
    expect(problems).toHaveLength(1);
    expect(problems[0]!.variable).toBe(variable);
    expect(problems[0]!.message).toMatch(message);
  });

  it("accepts a non-loopback address when the allowed hosts are named, and loopback names without", () => {
    expect(loadHttpConfig({ API_KEYS_MCP_ALLOWED_HOSTS: "keys.example.com" }, { host: "0.0.0.0" }).problems).toEqual([]);
    for (const host of ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"]) expect(loadHttpConfig({}, { host }).problems).toEqual([]);
  });
});

describe("withResourceAudience", () => {
  const secret: AuthConfig = { keyMaterial: { kind: "secret", secret: new Uint8Array(32) }, tenantClaims: ["merchant_id"], rolePermissions: {} };
  const jwks: AuthConfig = { ...secret, keyMaterial: { kind: "jwks", url: new URL("https://as.example/jwks") } };

  it("requires the resource in aud with a JWKS or public key, next to the configured audiences", () => {
    expect(withResourceAudience(jwks, "https://keys.example.com/mcp").audience).toEqual(["https://keys.example.com/mcp"]);
    expect(withResourceAudience({ ...jwks, audience: ["api-keys"] }, "https://keys.example.com/mcp").audience).toEqual(["https://keys.example.com/mcp", "api-keys"]);
  });

  it("leaves an HMAC secret's audience alone, and everything when no resource URL is set", () => {
    expect(withResourceAudience(secret, "https://keys.example.com/mcp")).toBe(secret);
    expect(withResourceAudience(jwks, undefined)).toBe(jwks);
  });
});

/** An Io for main() that serves nothing: for the refusals before a server starts. */
function refusalIo(env: Record<string, string> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
  const io: Io = {
    env: { API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_DB: ":memory:", ...env },
    platform: "linux",
    homedir: "/nonexistent-home",
    stdin: new PassThrough(),
    stdout,
    stderr,
    readFileSync: () => {
      throw new Error("no files here");
    },
    readTokenFile: () => Promise.reject(new Error("no files here")),
    onSignal: () => undefined,
    onExit: () => undefined,
    exit: () => undefined,
    version: "0.0.0-test",
  };
  return { io, output: () => ({ stdout: out, stderr: err }) };
}

describe("serve --http options", () => {
  it.each([
    [["serve", "--port", "80"], /--host and --port need --http/],
    [["serve", "--http", "--port"], /--port needs a value/],
    [["serve", "--http", "--verbose"], /unknown option --verbose/],
  ])("%j is refused with exit code 2 and the usage", async (argv, message) => {
    const { io, output } = refusalIo();
    expect(await main(argv, io)).toBe(2);
    expect(output().stderr).toMatch(message);
    expect(output().stderr).toContain("serve --http [--host <address>] [--port <port>]");
  });

  it.each([
    [["serve", "--http", "--host", "0.0.0.0"], /not a loopback address, and no host names are allowed.*; set API_KEYS_MCP_ALLOWED_HOSTS/],
    [["serve", "--http", "--port=99999"], /API_KEYS_MCP_HTTP_PORT: not a port number/],
  ])("%j does not start, naming the setting", async (argv, message) => {
    const { io, output } = refusalIo();
    expect(await main(argv, io)).toBe(2);
    expect(output().stderr).toMatch(message);
  });

  it("serve --help describes --http, --host and --port", async () => {
    const { io, output } = refusalIo();
    expect(await main(["serve", "--help"], io)).toBe(0);
    expect(output().stdout).toMatch(/--host <address>[\s\S]*--port <port>[\s\S]*Authorization: Bearer/);
  });
});
