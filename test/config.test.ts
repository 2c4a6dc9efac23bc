import { generateKeyPairSync } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, win32 } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_ROLE_PERMISSIONS } from "../src/auth/principal.js";
import { loadConfig, type ConfigProblem } from "../src/config.js";
import { ONE_CALL_PER_TOOL } from "./helpers/rpc.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { tempDir } from "./helpers/spawn.js";
import { merchantToken, TEST_SECRET } from "./helpers/tokens.js";

const HOME = "/home/tester";
type Env = Record<string, string | undefined>;

function load(env: Env, platform: NodeJS.Platform = "linux", homedir = HOME) {
  return loadConfig({ env, platform, homedir, readFile: (path) => readFileSync(path, "utf8") });
}

/** With a valid secret, so that only the setting under test can cause a problem. */
function loadWithSecret(env: Env, platform: NodeJS.Platform = "linux", homedir = HOME) {
  return load({ API_KEYS_MCP_JWT_SECRET: TEST_SECRET, ...env }, platform, homedir);
}

/**
 * The single problem, after checking it names `variable`, echoes none of `secrets`, and says
 * the fix: set, remove or make readable, naming the variable.
 */
function onlyProblem(problems: ConfigProblem[], variable: string, secrets: string[] = []): ConfigProblem {
  expect(problems.map((problem) => problem.variable)).toEqual([variable]);
  const problem = problems[0]!;
  expect(problem.message).toContain(variable);
  expect(problem.fix).toMatch(/^(set|remove|make .+ readable)\b/);
  expect(problem.fix).toContain(variable);
  for (const secret of secrets) expect(`${problem.message} ${problem.fix}`).not.toContain(secret);
  return problem;
}

function pem(type: "rsa" | "ed25519" | "x25519"): { publicPem: string; privatePem: string };
function pem(type: "ec", curve: string): { publicPem: string; privatePem: string };
function pem(type: "rsa" | "ec" | "ed25519" | "x25519", curve?: string): { publicPem: string; privatePem: string } {
  const pair =
    type === "rsa"
      ? generateKeyPairSync("rsa", { modulusLength: 2048 })
      : type === "ec"
        ? generateKeyPairSync("ec", { namedCurve: curve! })
        : type === "ed25519"
          ? generateKeyPairSync("ed25519")
          : generateKeyPairSync("x25519");
  return {
    publicPem: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    privatePem: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

describe("loadConfig defaults", () => {
  it("uses the documented defaults", () => {
    const { config, problems } = loadWithSecret({});
    expect(problems).toEqual([]);
    expect(config.rateLimits).toEqual({ read: 300, write: 60, authFailures: 30 });
    expect(config.logLevel).toBe("info");
    expect(config.token).toEqual({ value: undefined, file: undefined });
    expect(config.dbPath).toBe(join(HOME, ".local", "share", "api-keys-mcp", "keys.db"));
    expect(config.auth).toEqual({
      keyMaterial: { kind: "secret", secret: new TextEncoder().encode(TEST_SECRET) },
      issuer: undefined,
      audience: undefined,
      tenantClaims: ["merchant_id"],
      rolePermissions: DEFAULT_ROLE_PERMISSIONS,
    });
  });

  it("reads every setting when given", () => {
    const { config, problems } = loadWithSecret({
      API_KEYS_MCP_LOG_LEVEL: "debug",
      API_KEYS_MCP_RATE_LIMIT_READ: "10",
      API_KEYS_MCP_RATE_LIMIT_WRITE: "5",
      API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES: "3",
      API_KEYS_MCP_TENANT_CLAIM: "org_merchant",
      API_KEYS_MCP_JWT_ISSUER: "https://issuer.example.test",
      API_KEYS_MCP_JWT_AUDIENCE: "one, two ,,three",
      API_KEYS_MCP_TOKEN: "token-value",
      API_KEYS_MCP_TOKEN_FILE: "/run/token",
      API_KEYS_MCP_DB: ":memory:",
    });
    expect(problems).toEqual([]);
    expect(config.logLevel).toBe("debug");
    expect(config.rateLimits).toEqual({ read: 10, write: 5, authFailures: 3 });
    expect(config.auth?.tenantClaims).toEqual(["org_merchant"]);
    expect(config.auth?.issuer).toBe("https://issuer.example.test");
    expect(config.auth?.audience).toEqual(["one", "two", "three"]);
    expect(config.token).toEqual({ value: "token-value", file: "/run/token" });
    expect(config.dbPath).toBe(":memory:");
  });

  it.each([
    ["tenant_id,merchant_id", ["tenant_id", "merchant_id"]],
    [" tenant_id , merchant_id ", ["tenant_id", "merchant_id"]],
    ["org_id,tenant_id,merchant_id", ["org_id", "tenant_id", "merchant_id"]],
    ["merchant_id", ["merchant_id"]],
  ])("reads API_KEYS_MCP_TENANT_CLAIM=%j as the claims %j", (value, claims) => {
    const { config, problems } = loadWithSecret({ API_KEYS_MCP_TENANT_CLAIM: value });
    expect(problems).toEqual([]);
    expect(config.auth?.tenantClaims).toEqual(claims);
  });

  it.each([
    ["8h", 8 * 3_600_000],
    ["30m", 1_800_000],
    ["90s", 90_000],
    ["2d", 2 * 86_400_000],
  ])("reads API_KEYS_MCP_JWT_MAX_AGE=%s as %i ms", (value, ms) => {
    const { config, problems } = loadWithSecret({ API_KEYS_MCP_JWT_MAX_AGE: value });
    expect(problems).toEqual([]);
    expect(config.auth?.maxTokenAgeMs).toBe(ms);
  });

  it("treats empty values as unset", () => {
    const { config, problems } = loadWithSecret({ API_KEYS_MCP_LOG_LEVEL: "", API_KEYS_MCP_RATE_LIMIT_READ: "", API_KEYS_MCP_TOKEN: "  " });
    expect(problems).toEqual([]);
    expect(config.logLevel).toBe("info");
    expect(config.rateLimits.read).toBe(300);
    expect(config.token.value).toBeUndefined();
  });
});

describe("loadConfig invalid values", () => {
  it.each([
    ["API_KEYS_MCP_LOG_LEVEL", "loud-zq81x"],
    ["API_KEYS_MCP_RATE_LIMIT_READ", "many-zq81x"],
    ["API_KEYS_MCP_RATE_LIMIT_READ", "-7781"],
    ["API_KEYS_MCP_RATE_LIMIT_READ", "7.781"],
    ["API_KEYS_MCP_RATE_LIMIT_READ", "0"],
    ["API_KEYS_MCP_RATE_LIMIT_WRITE", "77810000"],
    ["API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES", "zero-zq81x"],
    ["API_KEYS_MCP_ROLE_PERMISSIONS", "{not json zq81x"],
    ["API_KEYS_MCP_ROLE_PERMISSIONS", '{"merchant_zq81x":["api_keys:admin"]}'],
    ["API_KEYS_MCP_ROLE_PERMISSIONS", '["api_keys:read","zq81x"]'],
    ["API_KEYS_MCP_ROLE_PERMISSIONS", '{"merchant_zq81x":"api_keys:read"}'],
    ["API_KEYS_MCP_TENANT_CLAIM", "merchant id zq81x"],
    ["API_KEYS_MCP_TENANT_CLAIM", "tenant_id,,merchant_zq81x"],
    ["API_KEYS_MCP_TENANT_CLAIM", "merchant_zq81x,merchant_zq81x"],
    ["API_KEYS_MCP_TENANT_CLAIM", "tenant_id, merchant zq81x"],
    ["API_KEYS_MCP_TENANT_CLAIM", " , "],
    ["API_KEYS_MCP_TENANT_CLAIM", "a,b,c,d,e,f,g,h,zq81x"],
    ["API_KEYS_MCP_JWT_MAX_AGE", "8zq81x"],
    ["API_KEYS_MCP_JWT_MAX_AGE", "7781"],
    ["API_KEYS_MCP_JWT_MAX_AGE", "0s"],
    ["API_KEYS_MCP_JWT_MAX_AGE", "0d"],
    ["API_KEYS_MCP_JWT_MAX_AGE", "-7781h"],
    ["API_KEYS_MCP_JWT_MAX_AGE", "7.781h"],
    ["API_KEYS_MCP_JWT_MAX_AGE", "7781w"],
    ["API_KEYS_MCP_JWT_MAX_AGE", "7781 h"],
  ])("%s=%s is a problem naming the variable, without the value, and how to fix it", (variable, value) => {
    const { config, problems } = loadWithSecret({ [variable]: value });
    const problem = onlyProblem(problems, variable, value === "0" ? [] : [value, "zq81x", "7781"]);
    // What a valid value looks like, and that removing the setting restores the default.
    expect(problem.fix).toMatch(new RegExp(`^set ${variable} to .{10,}, or remove it to use the default$`));
    // The setting falls back to its default; the problem keeps the server from serving (E3).
    expect(config).toEqual(loadWithSecret({}).config);
  });

  it("reports every invalid setting, not only the first", () => {
    const { problems } = loadWithSecret({ API_KEYS_MCP_LOG_LEVEL: "loud", API_KEYS_MCP_RATE_LIMIT_WRITE: "x" });
    expect(problems.map((problem) => problem.variable).sort()).toEqual(["API_KEYS_MCP_LOG_LEVEL", "API_KEYS_MCP_RATE_LIMIT_WRITE"]);
  });
});

describe("loadConfig verification settings (A2)", () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  it("names API_KEYS_MCP_JWT_SECRET and the alternatives when none is set, and says to set the secret", () => {
    const { config, problems } = load({});
    const problem = onlyProblem(problems, "API_KEYS_MCP_JWT_SECRET");
    for (const alternative of ["API_KEYS_MCP_JWT_PUBLIC_KEY", "API_KEYS_MCP_JWT_PUBLIC_KEY_FILE", "API_KEYS_MCP_JWKS_URL"]) {
      expect(problem.message).toContain(alternative);
    }
    expect(problem.fix).toMatch(/^set API_KEYS_MCP_JWT_SECRET \(or API_KEYS_MCP_JWT_SECRET_FILE\) to the HMAC secret/);
    expect(config.auth).toBeUndefined();
  });

  it("treats a blank secret as not set", () => {
    const { config, problems } = load({ API_KEYS_MCP_JWT_SECRET: "   " });
    onlyProblem(problems, "API_KEYS_MCP_JWT_SECRET");
    expect(config.auth).toBeUndefined();
  });

  it.each([
    ["a secret and a public key", { API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_JWT_PUBLIC_KEY: "-----BEGIN PUBLIC KEY-----" }],
    ["a secret and its file variant", { API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_JWT_SECRET_FILE: "/run/secret" }],
    ["a public key and a JWKS URL", { API_KEYS_MCP_JWT_PUBLIC_KEY: "-----BEGIN PUBLIC KEY-----", API_KEYS_MCP_JWKS_URL: "https://issuer.example.test/jwks" }],
  ])("refuses two verification settings, saying to remove one: %s", (_label, env) => {
    const { config, problems } = load(env);
    const [first, second] = Object.keys(env) as [string, string];
    const problem = onlyProblem(problems, first, [TEST_SECRET, "/run/secret", "issuer.example.test"]);
    expect(problem.message).toContain(second);
    expect(problem.fix).toBe(`remove one of ${first} and ${second}, keeping the one that matches how your tokens are signed`);
    expect(config.auth).toBeUndefined();
  });

  it("says to remove all but one of three verification settings", () => {
    const env = { API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_JWT_PUBLIC_KEY_FILE: "/run/key.pem", API_KEYS_MCP_JWKS_URL: "https://issuer.example.test/jwks" };
    const problem = onlyProblem(load(env).problems, "API_KEYS_MCP_JWT_SECRET", [TEST_SECRET, "/run/key.pem", "issuer.example.test"]);
    expect(problem.fix).toMatch(/^remove all but one of API_KEYS_MCP_JWT_SECRET, API_KEYS_MCP_JWT_PUBLIC_KEY_FILE and API_KEYS_MCP_JWKS_URL,/);
  });

  it("refuses a secret under 32 bytes, without echoing it", () => {
    const secret = "short-secret-zq81x-31-bytes-abc";
    expect(secret).toHaveLength(31);
    const { config, problems } = load({ API_KEYS_MCP_JWT_SECRET: secret });
    const problem = onlyProblem(problems, "API_KEYS_MCP_JWT_SECRET", [secret, "zq81x"]);
    expect(problem.message).toContain("32 bytes");
    expect(problem.fix).toMatch(/^set API_KEYS_MCP_JWT_SECRET to the secret .*at least 32 bytes/);
    expect(config.auth).toBeUndefined();
  });

  it("accepts a secret of exactly 32 bytes, counting bytes rather than characters", () => {
    expect(load({ API_KEYS_MCP_JWT_SECRET: "a".repeat(32) }).problems).toEqual([]);
    const multibyte = "é".repeat(16); // 16 characters, 32 bytes
    const { config, problems } = load({ API_KEYS_MCP_JWT_SECRET: multibyte });
    expect(problems).toEqual([]);
    expect(config.auth?.keyMaterial).toEqual({ kind: "secret", secret: new TextEncoder().encode(multibyte) });
  });

  it("reads the secret from API_KEYS_MCP_JWT_SECRET_FILE, trimming one trailing newline", () => {
    const file = join(dir.path, "secret");
    writeFileSync(file, `${TEST_SECRET}\n`);
    const { config, problems } = load({ API_KEYS_MCP_JWT_SECRET_FILE: file });
    expect(problems).toEqual([]);
    expect(config.auth?.keyMaterial).toEqual({ kind: "secret", secret: new TextEncoder().encode(TEST_SECRET) });
  });

  it("trims a CRLF from a secret file too", () => {
    const file = join(dir.path, "secret");
    writeFileSync(file, `${TEST_SECRET}\r\n`);
    expect(load({ API_KEYS_MCP_JWT_SECRET_FILE: file }).config.auth?.keyMaterial).toEqual({
      kind: "secret",
      secret: new TextEncoder().encode(TEST_SECRET),
    });
  });

  it("does not count the trailing newline of a secret file towards 32 bytes", () => {
    const file = join(dir.path, "secret");
    const secret = "b".repeat(31);
    writeFileSync(file, `${secret}\n`);
    const { problems } = load({ API_KEYS_MCP_JWT_SECRET_FILE: file });
    const problem = onlyProblem(problems, "API_KEYS_MCP_JWT_SECRET_FILE", [secret, file, dir.path]);
    // The file's content is wrong, not the variable: the fix is about what the file holds.
    expect(problem.fix).toMatch(/^set API_KEYS_MCP_JWT_SECRET_FILE to a file holding the secret .*at least 32 bytes/);
  });

  it.each(["API_KEYS_MCP_JWT_SECRET_FILE", "API_KEYS_MCP_JWT_PUBLIC_KEY_FILE"])(
    "makes an unreadable %s a problem whose fix is to make the file readable, with no path",
    (variable) => {
      const file = join(dir.path, "no-such-file-zq81x");
      const { config, problems } = load({ [variable]: file });
      const problem = onlyProblem(problems, variable, [file, dir.path, "zq81x"]);
      expect(problem.fix).toMatch(new RegExp(`^make the file named by ${variable} readable by the user the server runs as`));
      expect(config.auth).toBeUndefined();
    },
  );

  it("reads a public key from API_KEYS_MCP_JWT_PUBLIC_KEY_FILE", () => {
    const file = join(dir.path, "key.pem");
    writeFileSync(file, pem("ed25519").publicPem);
    const { config, problems } = load({ API_KEYS_MCP_JWT_PUBLIC_KEY_FILE: file });
    expect(problems).toEqual([]);
    expect(config.auth?.keyMaterial).toMatchObject({ kind: "public-key", algorithms: ["EdDSA", "Ed25519"] });
  });

  it.each([
    ["RSA", () => pem("rsa").publicPem, ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]],
    ["EC P-256", () => pem("ec", "prime256v1").publicPem, ["ES256"]],
    ["EC P-384", () => pem("ec", "secp384r1").publicPem, ["ES384"]],
    ["EC P-521", () => pem("ec", "secp521r1").publicPem, ["ES512"]],
    ["Ed25519", () => pem("ed25519").publicPem, ["EdDSA", "Ed25519"]],
  ])("derives the algorithm allow-list from a %s public key", (_label, makePem, algorithms) => {
    const { config, problems } = load({ API_KEYS_MCP_JWT_PUBLIC_KEY: makePem() });
    expect(problems).toEqual([]);
    expect(config.auth?.keyMaterial).toMatchObject({ kind: "public-key", algorithms });
  });

  it("accepts a PEM on one line with literal \\n sequences", () => {
    const oneLine = pem("rsa").publicPem.replace(/\n/g, "\\n");
    expect(oneLine).not.toContain("\n");
    const { config, problems } = load({ API_KEYS_MCP_JWT_PUBLIC_KEY: oneLine });
    expect(problems).toEqual([]);
    expect(config.auth?.keyMaterial.kind).toBe("public-key");
  });

  it.each([
    ["PKCS#8 private key", () => pem("rsa").privatePem],
    ["PKCS#1 RSA private key", () => generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString()],
    ["SEC1 EC private key", () => generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "sec1", format: "pem" }).toString()],
  ])("refuses a %s, without echoing it", (_label, makePem) => {
    const privatePem = makePem();
    const body = privatePem.split("\n")[1]!;
    const { config, problems } = load({ API_KEYS_MCP_JWT_PUBLIC_KEY: privatePem });
    const problem = onlyProblem(problems, "API_KEYS_MCP_JWT_PUBLIC_KEY", [body]);
    expect(problem.message).toMatch(/private key/);
    expect(problem.fix).toMatch(/^set API_KEYS_MCP_JWT_PUBLIC_KEY to the issuer's PEM public key .*never the private key$/);
    expect(config.auth).toBeUndefined();
  });

  it.each([
    ["garbage", "not a pem zq81x"],
    ["a truncated PEM", "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzq81x\n-----END PUBLIC KEY-----\n"],
  ])("refuses a malformed PEM (%s)", (_label, value) => {
    const { config, problems } = load({ API_KEYS_MCP_JWT_PUBLIC_KEY: value });
    onlyProblem(problems, "API_KEYS_MCP_JWT_PUBLIC_KEY", ["zq81x"]);
    expect(config.auth).toBeUndefined();
  });

  it.each([
    ["EC secp256k1", () => pem("ec", "secp256k1").publicPem],
    ["X25519 (key agreement, not signing)", () => pem("x25519").publicPem],
  ])("refuses an unsupported key type: %s", (_label, makePem) => {
    const { config, problems } = load({ API_KEYS_MCP_JWT_PUBLIC_KEY: makePem() });
    expect(onlyProblem(problems, "API_KEYS_MCP_JWT_PUBLIC_KEY").message).toMatch(/unsupported/);
    expect(config.auth).toBeUndefined();
  });

  // jose refuses RSA keys under 2048 bits at verification time; accepting one here would make
  // every token fail with ERR_AUTH_INVALID, blaming the token instead of the configuration.
  it("refuses an RSA public key under 2048 bits, which jose cannot verify with", () => {
    const weak = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ type: "spki", format: "pem" }).toString();
    const { config, problems } = load({ API_KEYS_MCP_JWT_PUBLIC_KEY: weak });
    onlyProblem(problems, "API_KEYS_MCP_JWT_PUBLIC_KEY");
    expect(config.auth).toBeUndefined();
  });

  it.each([
    "https://issuer.example.test/.well-known/jwks.json",
    "http://127.0.0.1:8080/jwks",
    "http://localhost/jwks",
    "http://[::1]:9000/jwks",
  ])("accepts the JWKS URL %s", (url) => {
    const { config, problems } = load({ API_KEYS_MCP_JWKS_URL: url });
    expect(problems).toEqual([]);
    expect(config.auth?.keyMaterial).toEqual({ kind: "jwks", url: new URL(url) });
  });

  it.each([
    "http://issuer.example.test/jwks",
    "http://127.0.0.1.nip.example.test/jwks",
    "http://127.0.0.1@issuer.example.test/jwks",
    "http://10.0.0.5/jwks",
    "ftp://127.0.0.1/jwks",
    "file:///etc/jwks.json",
    "not a url",
  ])("refuses the JWKS URL %s", (url) => {
    const { config, problems } = load({ API_KEYS_MCP_JWKS_URL: url });
    onlyProblem(problems, "API_KEYS_MCP_JWKS_URL");
    expect(config.auth).toBeUndefined();
  });
});

describe("loadConfig database path (S2)", () => {
  const DEFAULT_LINUX = join(HOME, ".local", "share", "api-keys-mcp", "keys.db");

  it.each([
    ["an absolute path", "/var/lib/api-keys/keys.db", "/var/lib/api-keys/keys.db"],
    ["a path under ~/", "~/data/keys.db", join(HOME, "data", "keys.db")],
    [":memory:", ":memory:", ":memory:"],
  ])("accepts %s, and leaves its directory for the operator to create", (_label, value, expected) => {
    const { config, problems } = loadWithSecret({ API_KEYS_MCP_DB: value });
    expect(problems).toEqual([]);
    expect(config.dbPath).toBe(expected);
    expect(config.createDbDirectory).toBe(false);
  });

  it.each(["keys.db", "./keys.db", "data/keys.db", "~keys.db"])("refuses the relative path %s, and names no database", (value) => {
    const { config, problems } = loadWithSecret({ API_KEYS_MCP_DB: value });
    const problem = onlyProblem(problems, "API_KEYS_MCP_DB", [value]);
    expect(problem.fix).toBe("set API_KEYS_MCP_DB to an absolute path (or one starting with ~/), or remove it to use the default location");
    // Not the default either: that is not where the operator asked for the keys to be.
    expect(config.dbPath).toBeUndefined();
    expect(config.createDbDirectory).toBe(false);
  });

  it.each([
    ["linux without XDG_DATA_HOME", "linux", {}, DEFAULT_LINUX],
    ["linux with XDG_DATA_HOME", "linux", { XDG_DATA_HOME: "/xdg/data" }, join("/xdg/data", "api-keys-mcp", "keys.db")],
    ["linux with a relative XDG_DATA_HOME (ignored)", "linux", { XDG_DATA_HOME: "rel/data" }, DEFAULT_LINUX],
    ["darwin", "darwin", { XDG_DATA_HOME: "/xdg/data" }, join(HOME, "Library", "Application Support", "api-keys-mcp", "keys.db")],
    ["win32 with APPDATA", "win32", { APPDATA: "C:\\Users\\tester\\AppData\\Roaming" }, "C:\\Users\\tester\\AppData\\Roaming\\api-keys-mcp\\keys.db"],
    ["win32 without APPDATA", "win32", {}, win32.join(HOME, "AppData", "Roaming", "api-keys-mcp", "keys.db")],
    ["win32 with a relative APPDATA (ignored)", "win32", { APPDATA: "AppData\\Roaming" }, win32.join(HOME, "AppData", "Roaming", "api-keys-mcp", "keys.db")],
  ] as const)("defaults to the per-user data directory on %s, which the server may create", (_label, platform, env, expected) => {
    const { config, problems } = loadWithSecret(env, platform);
    expect(problems).toEqual([]);
    expect(config.dbPath).toBe(expected);
    expect(config.createDbDirectory).toBe(true);
  });

  // `HOME= node …` or a host that passes a relative HOME: joining onto it would put the database
  // under whatever working directory the host started the server in.
  it.each([
    ["linux, empty HOME", "linux", {}, "", "HOME"],
    ["linux, relative HOME", "linux", {}, "home/tester-zq81x", "HOME"],
    ["linux, relative HOME and relative XDG_DATA_HOME", "linux", { XDG_DATA_HOME: "data-zq81x" }, "home/tester-zq81x", "HOME"],
    ["darwin, empty HOME", "darwin", {}, "", "HOME"],
    ["win32, relative home and no APPDATA", "win32", {}, "Users\\tester-zq81x", "USERPROFILE"],
    ["win32, empty home and relative APPDATA", "win32", { APPDATA: "Roaming-zq81x" }, "", "USERPROFILE"],
  ] as const)("refuses a default location built on an unusable home directory (%s)", (_label, platform, env, homedir, homeVariable) => {
    const { config, problems } = loadWithSecret(env, platform, homedir);
    const problem = onlyProblem(problems, "API_KEYS_MCP_DB", ["zq81x"]);
    expect(problem.message).toMatch(/home directory is empty or not an absolute path/);
    expect(problem.fix).toMatch(/^set API_KEYS_MCP_DB to an absolute path/);
    expect(problem.fix).toContain(`${homeVariable} set to the user's home directory`);
    expect(config.dbPath).toBeUndefined();
    expect(config.createDbDirectory).toBe(false);
  });

  it.each([
    ["linux", { XDG_DATA_HOME: "/xdg/data" }, join("/xdg/data", "api-keys-mcp", "keys.db")],
    ["win32", { APPDATA: "C:\\Roaming" }, "C:\\Roaming\\api-keys-mcp\\keys.db"],
  ] as const)("needs no home directory on %s when the data directory is set absolutely", (platform, env, expected) => {
    const { config, problems } = loadWithSecret(env, platform, "");
    expect(problems).toEqual([]);
    expect(config.dbPath).toBe(expected);
  });

  it.each(["", "relative-home"])("refuses ~/ in API_KEYS_MCP_DB when the home directory is %j", (homedir) => {
    const { config, problems } = loadWithSecret({ API_KEYS_MCP_DB: "~/keys.db" }, "linux", homedir);
    const problem = onlyProblem(problems, "API_KEYS_MCP_DB", ["relative-home"]);
    expect(problem.fix).toMatch(/^set API_KEYS_MCP_DB to an absolute path that does not start with ~\//);
    expect(config.dbPath).toBeUndefined();
  });

  it("takes an absolute API_KEYS_MCP_DB even when the home directory is unusable", () => {
    const { config, problems } = loadWithSecret({ API_KEYS_MCP_DB: "/srv/keys.db" }, "linux", "");
    expect(problems).toEqual([]);
    expect(config.dbPath).toBe("/srv/keys.db");
  });
});

describe("a misconfigured server still starts and answers ERR_CONFIG (E3)", () => {

  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function expectConfigErrorEverywhere(variable: string, secrets: string[] = []): Promise<void> {
    const { tools } = await server!.client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(ONE_CALL_PER_TOOL.map(([name]) => name).sort());
    const token = await merchantToken("merchant_a", "user_a");
    for (const [name, args] of ONE_CALL_PER_TOOL) {
      for (const withToken of [false, true]) {
        const outcome = await server!.call(name, withToken ? { ...args, token } : args);
        expect(outcome.ok ? "OK" : outcome.code, `${name} answers ERR_CONFIG`).toBe("ERR_CONFIG");
        if (outcome.ok) continue;
        expect(outcome.text.startsWith("ERR_CONFIG: ")).toBe(true);
        expect(outcome.text).toContain(variable);
        expect(outcome.text).not.toContain(token);
        for (const secret of secrets) expect(outcome.text).not.toContain(secret);
      }
    }
    expect(server!.db).toBeNull();
  }

  it("names API_KEYS_MCP_JWT_SECRET from every tool when no verification key is set", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_JWT_SECRET: undefined } });
    await expectConfigErrorEverywhere("API_KEYS_MCP_JWT_SECRET");
  });

  it("names API_KEYS_MCP_JWT_SECRET, without its value, when the secret is too short", async () => {
    const secret = "too-short-zq81x";
    server = await startTestServer({ env: { API_KEYS_MCP_JWT_SECRET: secret } });
    await expectConfigErrorEverywhere("API_KEYS_MCP_JWT_SECRET", [secret]);
  });

  it("names API_KEYS_MCP_JWT_PUBLIC_KEY when it holds a malformed PEM", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_JWT_SECRET: undefined, API_KEYS_MCP_JWT_PUBLIC_KEY: "not a pem zq81x" } });
    await expectConfigErrorEverywhere("API_KEYS_MCP_JWT_PUBLIC_KEY", ["zq81x"]);
  });

  it("names an invalid setting other than the key material", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_RATE_LIMIT_READ: "lots-zq81x" } });
    await expectConfigErrorEverywhere("API_KEYS_MCP_RATE_LIMIT_READ", ["zq81x"]);
  });

  /** The text every call answers with; expectConfigErrorEverywhere has checked they are all alike. */
  async function configErrorText(): Promise<string> {
    const outcome = await server!.call("list_api_keys", { token: await merchantToken("merchant_a", "user_a") });
    return outcome.ok ? "" : outcome.text;
  }

  // The advice has to be the fix: "set" would send the operator to add a second setting, or to
  // re-type a path that is right, instead of removing one or changing the file's permissions.
  it("tells the operator to remove one of two verification settings, not to set one", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_JWKS_URL: "https://issuer.example.test/jwks" } });
    await expectConfigErrorEverywhere("API_KEYS_MCP_JWKS_URL", [TEST_SECRET]);
    expect(await configErrorText()).toBe(
      "ERR_CONFIG: The server is not configured correctly: more than one token verification setting is set " +
        "(API_KEYS_MCP_JWT_SECRET and API_KEYS_MCP_JWKS_URL). Ask the operator to remove one of API_KEYS_MCP_JWT_SECRET " +
        "and API_KEYS_MCP_JWKS_URL, keeping the one that matches how your tokens are signed, then restart the server.",
    );
  });

  it("tells the operator to make an unreadable secret file readable, without its path", async () => {
    const dir = tempDir();
    try {
      // A directory in place of the file: unreadable whoever runs the tests (root reads any mode).
      server = await startTestServer({ env: { API_KEYS_MCP_JWT_SECRET: undefined, API_KEYS_MCP_JWT_SECRET_FILE: dir.path } });
      await expectConfigErrorEverywhere("API_KEYS_MCP_JWT_SECRET_FILE", [dir.path, TEST_SECRET]);
      expect(await configErrorText()).toMatch(
        /Ask the operator to make the file named by API_KEYS_MCP_JWT_SECRET_FILE readable by the user the server runs as, or set API_KEYS_MCP_JWT_SECRET_FILE to the absolute path of the right file, then restart the server\.$/,
      );
    } finally {
      dir.remove();
    }
  });

  it("says how many more problems the log lists", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_LOG_LEVEL: "loud", API_KEYS_MCP_RATE_LIMIT_READ: "x", API_KEYS_MCP_DB: "keys.db" } });
    await expectConfigErrorEverywhere("API_KEYS_MCP_DB");
    expect(await configErrorText()).toMatch(/then restart the server\. The server log lists 2 more configuration problems\.$/);
  });
});

describe("delivery settings", () => {
  let root: ReturnType<typeof tempDir>;
  let dir: string;
  beforeEach(() => {
    root = tempDir();
    dir = join(root.path, "keys");
    mkdirSync(dir, { mode: 0o700 });
  });
  afterEach(() => root.remove());

  it("defaults to inline, allowed, with no directory", () => {
    const { config, problems } = loadWithSecret({});
    expect(problems).toEqual([]);
    expect(config.delivery).toEqual({ default: "inline", inlineAllowed: true });
  });

  it("offers file delivery with a good directory, inline still the default", () => {
    const { config, problems } = loadWithSecret({ API_KEYS_MCP_DELIVERY_DIR: dir });
    expect(problems).toEqual([]);
    expect(config.delivery).toEqual({ default: "inline", inlineAllowed: true, directory: dir });
  });

  it("expands ~/ in API_KEYS_MCP_DELIVERY_DIR to the home directory", () => {
    const { config, problems } = load({ API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_DELIVERY_DIR: "~/keys" }, "linux", root.path);
    expect(problems).toEqual([]);
    expect(config.delivery.directory).toBe(dir);
  });

  it("makes file the default and refuses inline with API_KEYS_MCP_DELIVERY=file", () => {
    const { config, problems } = loadWithSecret({ API_KEYS_MCP_DELIVERY: "file", API_KEYS_MCP_DELIVERY_DIR: dir });
    expect(problems).toEqual([]);
    expect(config.delivery).toEqual({ default: "file", inlineAllowed: false, directory: dir });
  });

  it("needs a directory for API_KEYS_MCP_DELIVERY=file", () => {
    const problem = onlyProblem(loadWithSecret({ API_KEYS_MCP_DELIVERY: "file" }).problems, "API_KEYS_MCP_DELIVERY_DIR");
    expect(problem.fix).toMatch(/^set API_KEYS_MCP_DELIVERY_DIR to an existing directory .*, or remove API_KEYS_MCP_DELIVERY$/);
  });

  it("refuses another value of API_KEYS_MCP_DELIVERY", () => {
    onlyProblem(loadWithSecret({ API_KEYS_MCP_DELIVERY: "encrypt_to" }).problems, "API_KEYS_MCP_DELIVERY");
  });

  it.each([
    ["a relative path", () => "keys", /must be an absolute path/],
    ["a directory that does not exist", () => join(root.path, "missing"), /does not exist/],
    ["a file", () => (writeFileSync(join(root.path, "file"), ""), join(root.path, "file")), /not a directory/],
    ["a symbolic link", () => (symlinkSync(dir, join(root.path, "link")), join(root.path, "link")), /symbolic link/],
    ["a group-writable directory", () => (chmodSync(dir, 0o775), dir), /writable by its group or by others/],
  ])("refuses %s as API_KEYS_MCP_DELIVERY_DIR, naming no path", (_label, path, message) => {
    const value = path();
    const problem = onlyProblem(loadWithSecret({ API_KEYS_MCP_DELIVERY_DIR: value }).problems, "API_KEYS_MCP_DELIVERY_DIR", [root.path]);
    expect(problem.message).toMatch(message);
  });

  it("answers every call with ERR_CONFIG when the delivery directory is unusable", async () => {
    chmodSync(dir, 0o777);
    const server = await startTestServer({ env: { API_KEYS_MCP_DELIVERY_DIR: dir, API_KEYS_MCP_TOKEN: await merchantToken("m") } });
    try {
      const result = await server.call("list_api_keys", {});
      expect(result.ok ? "ok" : result.text).toMatch(/^ERR_CONFIG: .*API_KEYS_MCP_DELIVERY_DIR.*writable by its group or by others/);
      if (!result.ok) expect(result.text).not.toContain(root.path);
    } finally {
      await server.close();
    }
  });
});
