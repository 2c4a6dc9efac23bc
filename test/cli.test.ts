import { generateKeyPairSync } from "node:crypto";
import { decodeProtectedHeader, jwtVerify } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PACKAGE_VERSION, runCli } from "./helpers/cli.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { runCommand, tempDir } from "./helpers/spawn.js";
import { TEST_SECRET } from "./helpers/tokens.js";

const JWT_LINE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/;

function payloadOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
}

// The commands run in-process through the Io seam (helpers/cli.ts), as src/index.ts wires them;
// "the built command" at the end runs the real entry point for what only a process shows.
describe("command line (C1, C2, C4)", () => {
  // One-shot commands write nothing, so they share one HOME and run concurrently.
  let home: ReturnType<typeof tempDir>;
  beforeAll(() => {
    home = tempDir();
  });
  afterAll(() => home.remove());
  const withSecret = () => ({ API_KEYS_MCP_JWT_SECRET: TEST_SECRET });
  const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, env, home.path);

  describe.concurrent("help and version", () => {
    it.each(["--version", "-v", "serve --version"])("%s prints the package version", async (line) => {
      const args = line.split(" ");
      const result = await cli(args);
      expect(result).toEqual({ code: 0, stdout: `${PACKAGE_VERSION}\n`, stderr: "" });
    });

    it.each(["--help", "-h", "help"])("%s prints the usage and exits 0", async (arg) => {
      const result = await cli([arg]);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe("");
      expect(result.stdout).toMatch(/^api-keys-mcp: /);
      expect(result.stdout).toContain("Usage:");
      expect(result.stdout).toContain("api-keys-mcp token [options]");
      expect(result.stdout).toContain("api-keys-mcp --version");
    });

    it("serve --help prints the server usage and exits 0 without serving", async () => {
      const result = await cli(["serve", "--help"]);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe("");
      expect(result.stdout).toMatch(/^Usage: api-keys-mcp \[serve\]\n/);
      expect(result.stdout).toContain("SIGINT/SIGTERM");
    });

    it("token --help prints the token usage and exits 0, even with no secret configured", async () => {
      const result = await cli(["token", "--help"]);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe("");
      expect(result.stdout).toMatch(/^Usage: api-keys-mcp token --merchant <id> --sub <user>/);
      expect(result.stdout).toContain("--ttl <duration>");
    });

    it("refuses an unknown command with exit code 2 and the usage on stderr", async () => {
      const result = await cli(["frobnicate"]);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/^api-keys-mcp: unknown command frobnicate\n/);
      expect(result.stderr).toContain("Usage:");
    });

    it("refuses an unknown serve option with exit code 2", async () => {
      const result = await cli(["serve", "--frobnicate"]);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/^api-keys-mcp serve: unknown option --frobnicate\n/);
    });
  });

  describe("token with a server", () => {
    let server: TestServer | undefined;
    afterEach(async () => {
      await server?.close();
      server = undefined;
    });

    it("prints one HS256 token that the server accepts, acting as --sub for --merchant", async () => {
      const result = await cli(["token", "--merchant", "m", "--sub", "s"], withSecret());
      expect(result.code).toBe(0);
      expect(result.stderr).toBe("");
      expect(result.stdout).toMatch(JWT_LINE);
      const jwt = result.stdout.trim();

      expect(decodeProtectedHeader(jwt)).toEqual({ alg: "HS256", typ: "JWT" });
      const { payload } = await jwtVerify(jwt, new TextEncoder().encode(TEST_SECRET), { algorithms: ["HS256"] });
      expect(payload).toEqual({ merchant_id: "m", sub: "s", scope: "api_keys:read api_keys:write", iat: expect.any(Number), exp: expect.any(Number) });
      expect(payload.exp! - payload.iat!).toBe(3600);

      server = await startTestServer({ env: { ...withSecret(), API_KEYS_MCP_TOKEN: jwt } });
      const created = await server.call("create_api_key", { name: "from the cli token" });
      expect(created.ok).toBe(true);
      expect(created.ok && created.data.key.created_by).toBe("s");
      const other = await server.call("list_api_keys", {});
      expect(other.ok && other.data.keys.map((k: { name: string }) => k.name)).toEqual(["from the cli token"]);
    });

    it("includes the configured issuer, audience and tenant claim, and the server accepts it", async () => {
      const env = {
        ...withSecret(),
        API_KEYS_MCP_JWT_ISSUER: "https://issuer.example",
        API_KEYS_MCP_JWT_AUDIENCE: "api-keys-mcp",
        API_KEYS_MCP_TENANT_CLAIM: "org_merchant",
      };
      const result = await cli(["token", "--merchant", "m2", "--sub", "s2"], env);
      expect(result.code).toBe(0);
      const jwt = result.stdout.trim();
      expect(payloadOf(jwt)).toMatchObject({ org_merchant: "m2", sub: "s2", iss: "https://issuer.example", aud: ["api-keys-mcp"] });
      expect(payloadOf(jwt)).not.toHaveProperty("merchant_id");

      server = await startTestServer({ env: { ...env, API_KEYS_MCP_TOKEN: jwt } });
      const created = await server.call("create_api_key", { name: "issuer and audience" });
      expect(created.ok && created.data.key.created_by).toBe("s2");
    });

    it("gives a read-only token for --scope api_keys:read, which the server forbids to create", async () => {
      const result = await cli(["token", "--merchant", "m", "--sub", "reader", "--scope", "api_keys:read"], withSecret());
      expect(result.code).toBe(0);
      const jwt = result.stdout.trim();
      expect(payloadOf(jwt).scope).toBe("api_keys:read");

      server = await startTestServer({ env: { ...withSecret(), API_KEYS_MCP_TOKEN: jwt } });
      const create = await server.call("create_api_key", { name: "not allowed" });
      expect(create.ok).toBe(false);
      expect(!create.ok && create.code).toBe("ERR_FORBIDDEN");
      const list = await server.call("list_api_keys", {});
      expect(list.ok && list.data.keys).toEqual([]);
    });
  });

  describe.concurrent("token on its own", () => {
    it.each([
      ["30m", 1800],
      ["8h", 28_800],
      ["90s", 90],
      ["30d", 2_592_000],
    ])("honours --ttl %s", async (ttl, seconds) => {
      const result = await cli(["token", "--merchant", "m", "--sub", "s", "--ttl", ttl], withSecret());
      expect(result.code).toBe(0);
      const payload = payloadOf(result.stdout.trim());
      expect((payload.exp as number) - (payload.iat as number)).toBe(seconds);
    });

    it.each(["0s", "31d", "1w", "8", "abc", "1.5h", "-1h"])("refuses --ttl=%s with nothing on stdout", async (ttl) => {
      const result = await cli(["token", "--merchant", "m", "--sub", "s", `--ttl=${ttl}`], withSecret());
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toBe("api-keys-mcp token: --ttl must be like 30m, 8h or 7d, at most 30d\n");
    });

    it.each([
      ["a public key", () => ({ API_KEYS_MCP_JWT_PUBLIC_KEY: generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString() })],
      ["a JWKS", () => ({ API_KEYS_MCP_JWKS_URL: "https://idp.example/.well-known/jwks.json" })],
    ])("refuses when the server verifies with %s", async (_label, env) => {
      const result = await cli(["token", "--merchant", "m", "--sub", "s"], env());
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/^api-keys-mcp token: the server verifies tokens with a public key or a JWKS, so it cannot mint them/);
    });

    it("refuses when no secret is configured, naming the variable", async () => {
      const result = await cli(["token", "--merchant", "m", "--sub", "s"]);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/^api-keys-mcp token: no token verification key is configured; set exactly one of API_KEYS_MCP_JWT_SECRET/);
    });

    it("refuses a secret shorter than 32 bytes", async () => {
      const result = await cli(["token", "--merchant", "m", "--sub", "s"], { API_KEYS_MCP_JWT_SECRET: "short-secret" });
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toBe("api-keys-mcp token: API_KEYS_MCP_JWT_SECRET: the HMAC secret must be at least 32 bytes\n");
    });

    it.each([
      ["--merchant", ["--sub", "s"]],
      ["--sub", ["--merchant", "m"]],
      ["both", []],
    ])("refuses a missing %s with exit code 2", async (_missing, args) => {
      const result = await cli(["token", ...args], withSecret());
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/^api-keys-mcp token: --merchant and --sub are required\n/);
    });

    it("refuses an unknown option with exit code 2", async () => {
      const result = await cli(["token", "--merchant", "m", "--sub", "s", "--tenant", "x"], withSecret());
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/^api-keys-mcp token: Unknown option '--tenant'/);
    });
  });

  // What only the process shows: the entry point reads the version, wires Io to the process and
  // turns main's result into the exit status. Exit codes 1 and 2 are covered by `audit verify`
  // in store/audit-chain.test.ts.
  describe("the built command", () => {
    let server: TestServer | undefined;
    afterAll(async () => {
      await server?.close();
    });

    it("--version prints the package version and exits 0", async () => {
      expect(await runCommand(["--version"], {}, home.path)).toEqual({ code: 0, signal: null, stdout: `${PACKAGE_VERSION}\n`, stderr: "" });
    });

    it("token prints a token that the server accepts", async () => {
      const result = await runCommand(["token", "--merchant", "m", "--sub", "s"], withSecret(), home.path);
      expect(result).toMatchObject({ code: 0, signal: null, stderr: "" });
      expect(result.stdout).toMatch(JWT_LINE);
      server = await startTestServer({ env: { ...withSecret(), API_KEYS_MCP_TOKEN: result.stdout.trim() } });
      const created = await server.call("create_api_key", { name: "from the cli token" });
      expect(created.ok && created.data.key.created_by).toBe("s");
    });
  });
});
