import { readFileSync } from "node:fs";
import { PassThrough, Readable } from "node:stream";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import type { Io } from "../../src/cli/io.js";
import { mintToken } from "../../src/cli/token.js";
import { startTestServer } from "../helpers/server.js";
import { TEST_SECRET } from "../helpers/tokens.js";

type Env = Record<string, string | undefined>;

/** Runs `api-keys-mcp token …` in-process; the environment has the test secret unless `env` says otherwise. */
async function token(args: string[], env: Env = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const io: Io = {
    env: { API_KEYS_MCP_JWT_SECRET: TEST_SECRET, ...env },
    platform: "linux",
    homedir: "/nonexistent-home",
    stdin: Readable.from([]),
    stdout,
    stderr,
    readFileSync: (path) => readFileSync(path, "utf8"),
    readTokenFile: () => Promise.reject(new Error("no token file in this test")),
    onSignal: () => undefined,
    onExit: () => undefined,
    exit: () => undefined,
    version: "0.0.0-test",
  };
  const code = await mintToken(args, io);
  stdout.end();
  stderr.end();
  return { code, stdout: String(stdout.read() ?? ""), stderr: String(stderr.read() ?? "") };
}

const COMPOSITE: Env = { API_KEYS_MCP_TENANT_CLAIM: "tenant_id,merchant_id" };

describe("api-keys-mcp token with a tenant made of several claims", () => {
  it("sets every tenant claim from --claim and --merchant, and the server files the key under that tenant", async () => {
    const result = await token(["--claim", "tenant_id=public", "--merchant", "merchant_123", "--sub", "alice"], COMPOSITE);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const jwt = result.stdout.trim();
    expect(decodeJwt(jwt)).toMatchObject({ tenant_id: "public", merchant_id: "merchant_123", sub: "alice" });

    const server = await startTestServer({ env: COMPOSITE });
    try {
      const created = await server.call("create_api_key", { name: "minted", token: jwt });
      expect(created.ok).toBe(true);
      expect(server.db!.prepare("SELECT tenant_id FROM api_keys").pluck().all()).toEqual(['{"merchant_id":"merchant_123","tenant_id":"public"}']);
    } finally {
      await server.close();
    }
  });

  it("takes every claim from --claim, in any order", async () => {
    const result = await token(["--sub", "alice", "--claim", "merchant_id=m 1", "--claim", "tenant_id=a=b"], COMPOSITE);
    expect(result.code).toBe(0);
    expect(decodeJwt(result.stdout.trim())).toMatchObject({ tenant_id: "a=b", merchant_id: "m 1" });
  });

  it("keeps --merchant for a single tenant claim, whatever its name", async () => {
    const result = await token(["--merchant", "merchant_9", "--sub", "bob"], { API_KEYS_MCP_TENANT_CLAIM: "org_merchant" });
    expect(result.code).toBe(0);
    const claims = decodeJwt(result.stdout.trim());
    expect(claims.org_merchant).toBe("merchant_9");
    expect(claims).not.toHaveProperty("merchant_id");
  });

  it.each([
    ["a tenant claim with no value", ["--merchant", "m", "--sub", "s"], COMPOSITE, "the tenant is made of tenant_id, merchant_id (API_KEYS_MCP_TENANT_CLAIM): give --claim tenant_id=<value>"],
    ["a claim the tenant is not made of", ["--merchant", "m", "--claim", "org_id=o", "--sub", "s"], COMPOSITE, "--claim org_id: the tenant is made of tenant_id, merchant_id (API_KEYS_MCP_TENANT_CLAIM), not org_id"],
    ["--claim without =", ["--merchant", "m", "--claim", "tenant_id", "--sub", "s"], COMPOSITE, "--claim must be <name>=<value> with a value, e.g. --claim tenant_id=<value>"],
    ["--claim with an empty value", ["--merchant", "m", "--claim", "tenant_id=", "--sub", "s"], COMPOSITE, "--claim must be <name>=<value> with a value, e.g. --claim tenant_id=<value>"],
    ["one claim given twice", ["--merchant", "m", "--claim", "tenant_id=a", "--claim", "tenant_id=b", "--sub", "s"], COMPOSITE, "--claim tenant_id is given twice"],
    ["--merchant and --claim merchant_id together", ["--merchant", "m", "--claim", "merchant_id=n", "--claim", "tenant_id=t", "--sub", "s"], COMPOSITE, "--merchant and --claim merchant_id both set merchant_id; give one of them"],
    [
      "--merchant when no tenant claim is merchant_id",
      ["--merchant", "m", "--sub", "s"],
      { API_KEYS_MCP_TENANT_CLAIM: "org_id,tenant_id" },
      "--merchant cannot say which claim it sets: the tenant is made of org_id, tenant_id; give each with --claim <name>=<value>",
    ],
  ])("refuses %s with exit code 2 and nothing on stdout", async (_label, args, env, message) => {
    const result = await token(args, env);
    expect(result).toEqual({ code: 2, stdout: "", stderr: `api-keys-mcp token: ${message}\n` });
  });

  it("refuses an invalid API_KEYS_MCP_TENANT_CLAIM instead of minting a token for another claim", async () => {
    const result = await token(["--merchant", "m", "--sub", "s"], { API_KEYS_MCP_TENANT_CLAIM: "tenant id" });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^api-keys-mcp token: API_KEYS_MCP_TENANT_CLAIM is not valid/);
  });

  it("documents --claim in its help", async () => {
    const result = await token(["--help"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/--claim <name=value>/);
    expect(result.stdout).toMatch(/API_KEYS_MCP_TENANT_CLAIM=tenant_id,merchant_id/);
  });
});

describe("api-keys-mcp token with API_KEYS_MCP_JWT_MAX_AGE", () => {
  it("mints a token whose lifetime is within the maximum age", async () => {
    const result = await token(["--merchant", "m", "--sub", "s", "--ttl", "30m"], { API_KEYS_MCP_JWT_MAX_AGE: "30m" });
    expect(result.code).toBe(0);
    const claims = decodeJwt(result.stdout.trim());
    expect(claims.exp! - claims.iat!).toBe(1800);
  });

  it("refuses a --ttl longer than the maximum age, which the server would cut short", async () => {
    const result = await token(["--merchant", "m", "--sub", "s", "--ttl", "8h"], { API_KEYS_MCP_JWT_MAX_AGE: "1h" });
    expect(result).toEqual({
      code: 2,
      stdout: "",
      stderr: "api-keys-mcp token: --ttl 8h is longer than API_KEYS_MCP_JWT_MAX_AGE (1h), after which the server refuses the token; use --ttl 1h or less\n",
    });
  });

  it("refuses an invalid API_KEYS_MCP_JWT_MAX_AGE", async () => {
    const result = await token(["--merchant", "m", "--sub", "s"], { API_KEYS_MCP_JWT_MAX_AGE: "1 hour" });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^api-keys-mcp token: API_KEYS_MCP_JWT_MAX_AGE is not valid/);
  });
});
