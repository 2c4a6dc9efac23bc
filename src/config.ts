import { createPublicKey, type KeyObject } from "node:crypto";
import { isIP, isIPv4 } from "node:net";
import { posix, win32 } from "node:path";
import * as z from "zod";
import { DEFAULT_ROLE_PERMISSIONS, PERMISSIONS, type Permission } from "./auth/principal.js";
import { checkDeliveryDirectory, DIRECTORY_PROBLEMS } from "./delivery/file.js";
import { DEFAULT_DELIVERY, type DeliverySettings } from "./delivery/policy.js";
import { DURATION_PATTERN, parseDuration } from "./keys/duration.js";
import { LOG_LEVELS, type LogLevel } from "./log.js";

/** How tokens are verified (A2): exactly one kind of key material. */
export type KeyMaterial =
  | { kind: "secret"; secret: Uint8Array }
  | { kind: "public-key"; key: KeyObject; algorithms: string[] }
  | { kind: "jwks"; url: URL };

export interface AuthConfig {
  keyMaterial: KeyMaterial;
  issuer?: string;
  audience?: string[];
  /** The claims the tenant is made of: one (its value is the tenant id) or several. */
  tenantClaims: string[];
  /** Tokens issued (`iat`) longer ago than this are refused; unset, only `exp` limits them. */
  maxTokenAgeMs?: number;
  rolePermissions: Record<string, Permission[]>;
}

export interface Config {
  /**
   * Absolute path of the SQLite file, or `:memory:`; absent when PostgreSQL is used
   * (`databaseUrl`) or when no usable location is configured (see `problems`).
   */
  dbPath?: string;
  /** API_KEYS_MCP_DATABASE_URL: the PostgreSQL database shared by every instance, instead of a SQLite file. */
  databaseUrl?: string;
  /**
   * True only for the per-user default location, whose directory the server creates (owner-only).
   * A configured path's directory must already exist: a typo in it would otherwise create a new,
   * empty database that knows none of the keys.
   */
  createDbDirectory: boolean;
  logLevel: LogLevel;
  /** Absent when the verification settings are missing or invalid (see `problems`). */
  auth?: AuthConfig;
  token: { value?: string; file?: string };
  rateLimits: { read: number; write: number; authFailures: number };
  /** API_KEYS_MCP_AUDIT_KEY: when set, the audit hash chain is an HMAC chain under this key. */
  auditKey?: Uint8Array;
  /** How new keys are handed over: API_KEYS_MCP_DELIVERY and API_KEYS_MCP_DELIVERY_DIR. */
  delivery: DeliverySettings;
}

/** A setting that keeps the server from answering; every call then gets ERR_CONFIG naming it. */
export interface ConfigProblem {
  variable: string;
  /** What is wrong. Safe for a model to read: no value, path or key material. */
  message: string;
  /**
   * What the operator must do, as an instruction that completes "Ask the operator to …": it
   * starts with set, remove or make … readable. Same safety as `message`.
   */
  fix: string;
}

export interface ConfigEnvironment {
  env: Record<string, string | undefined>;
  platform: NodeJS.Platform;
  homedir: string;
  /** Reads a `*_FILE` setting; throws if the file cannot be read. */
  readFile: (path: string) => string;
}

const SECRET_MIN_BYTES = 32;
const positiveInt = z.coerce.number().int().positive().max(1_000_000);
const duration = z
  .string()
  .regex(DURATION_PATTERN)
  .transform((text) => parseDuration(text)!)
  .pipe(z.number().positive());
const CLAIM_NAME = /^[\w.:-]{1,64}$/;
const MAX_TENANT_CLAIMS = 8;
const claimList = z
  .string()
  .transform((text) => text.split(",").map((name) => name.trim()))
  .pipe(
    z
      .array(z.string().regex(CLAIM_NAME))
      .min(1)
      .max(MAX_TENANT_CLAIMS)
      .refine((names) => new Set(names).size === names.length),
  );

/**
 * The only reader of the environment. Never throws: a bad value becomes a problem, and the
 * server still starts, lists its tools and answers ERR_CONFIG (E3).
 */
export function loadConfig(source: ConfigEnvironment): { config: Config; problems: ConfigProblem[] } {
  const { env } = source;
  const problems: ConfigProblem[] = [];
  /** `expected` completes "set the variable to …": a noun phrase such as "a whole number of calls per minute". */
  const setting = <T>(variable: string, schema: z.ZodType<T>, fallback: T, expected: string): T => {
    const raw = env[variable];
    if (raw === undefined || raw === "") return fallback;
    const parsed = schema.safeParse(raw);
    if (parsed.success) return parsed.data;
    problems.push({ variable, message: `${variable} is not valid`, fix: `set ${variable} to ${expected}, or remove it to use the default` });
    return fallback;
  };

  const databaseUrl = loadDatabaseUrl(source, problems);
  // With PostgreSQL there is no SQLite file, so no default location to work out (or refuse).
  const dbPath = databaseUrl === undefined ? databasePath(source, problems) : undefined;
  const config: Config = {
    dbPath: dbPath?.path,
    databaseUrl,
    createDbDirectory: dbPath?.isDefault ?? false,
    logLevel: setting("API_KEYS_MCP_LOG_LEVEL", z.enum(LOG_LEVELS), "info", `one of ${LOG_LEVELS.join(", ")}`),
    token: { value: nonEmpty(env.API_KEYS_MCP_TOKEN), file: nonEmpty(env.API_KEYS_MCP_TOKEN_FILE) },
    rateLimits: {
      read: setting("API_KEYS_MCP_RATE_LIMIT_READ", positiveInt, 300, "a whole number of calls per minute"),
      write: setting("API_KEYS_MCP_RATE_LIMIT_WRITE", positiveInt, 60, "a whole number of calls per minute"),
      authFailures: setting("API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES", positiveInt, 30, "a whole number of failures per minute"),
    },
    delivery: DEFAULT_DELIVERY,
  };
  const deliveryDefault = setting("API_KEYS_MCP_DELIVERY", z.enum(["inline", "file"]), "inline", 'inline (keys in the tool result, the default) or file (keys only in files or encrypted; inline refused)');
  config.delivery = loadDelivery(source, deliveryDefault, problems);

  config.auditKey = loadAuditKey(source, problems);
  const keyMaterial = loadKeyMaterial(source, problems);
  const rolePermissions = setting(
    "API_KEYS_MCP_ROLE_PERMISSIONS",
    z
      .string()
      .transform((text, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          ctx.addIssue({ code: "custom", message: "not JSON" });
          return z.NEVER;
        }
      })
      .pipe(z.record(z.string().min(1), z.array(z.enum(PERMISSIONS)))),
    {},
    'a JSON object mapping role ids to permission lists, e.g. {"merchant_operator":["api_keys:read","api_keys:write"]}',
  );
  const tenantClaims = setting(
    "API_KEYS_MCP_TENANT_CLAIM",
    claimList,
    ["merchant_id"],
    `a claim name such as merchant_id, or up to ${MAX_TENANT_CLAIMS} claim names separated by commas, each once (e.g. tenant_id,merchant_id)`,
  );
  const maxTokenAgeMs = setting<number | undefined>(
    "API_KEYS_MCP_JWT_MAX_AGE",
    duration,
    undefined,
    "a duration such as 30m, 8h or 2d: a whole number above zero followed by s, m, h or d",
  );

  if (keyMaterial) {
    config.auth = {
      keyMaterial,
      issuer: nonEmpty(env.API_KEYS_MCP_JWT_ISSUER),
      audience: nonEmpty(env.API_KEYS_MCP_JWT_AUDIENCE)
        ?.split(",")
        .map((s) => s.trim())
        .filter(Boolean),
      tenantClaims,
      maxTokenAgeMs,
      rolePermissions: { ...DEFAULT_ROLE_PERMISSIONS, ...rolePermissions },
    };
  }
  return { config, problems };
}

/**
 * API_KEYS_MCP_DELIVERY_DIR, checked now (and again before each write): a directory that exists,
 * is not a symbolic link, belongs to the server's user and is writable by nobody else. With
 * API_KEYS_MCP_DELIVERY=file it is required, and inline delivery is refused.
 */
function loadDelivery(source: ConfigEnvironment, defaultMethod: "inline" | "file", problems: ConfigProblem[]): DeliverySettings {
  let configured = nonEmpty(source.env.API_KEYS_MCP_DELIVERY_DIR);
  const path = source.platform === "win32" ? win32 : posix;
  if (configured?.startsWith("~/") && path.isAbsolute(source.homedir)) configured = path.join(source.homedir, configured.slice(2));
  const settings: DeliverySettings = { default: defaultMethod, inlineAllowed: defaultMethod === "inline" };
  if (configured === undefined) {
    if (defaultMethod === "file") {
      problems.push({
        variable: "API_KEYS_MCP_DELIVERY_DIR",
        message: "API_KEYS_MCP_DELIVERY is file but API_KEYS_MCP_DELIVERY_DIR is not set, so there is nowhere to write keys",
        fix: "set API_KEYS_MCP_DELIVERY_DIR to an existing directory owned by the server's user and writable by it alone (mkdir -m 700), or remove API_KEYS_MCP_DELIVERY",
      });
    }
    return settings;
  }
  const problem = checkDeliveryDirectory(configured, { platform: source.platform });
  if (problem) {
    problems.push({ variable: "API_KEYS_MCP_DELIVERY_DIR", ...DIRECTORY_PROBLEMS[problem] });
    return settings;
  }
  return { ...settings, directory: configured };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

/**
 * API_KEYS_MCP_DB if set (absolute, `~/` expanded), else a per-user data directory. Never a path
 * relative to the working directory: MCP hosts start servers in `/` or wherever they happen to
 * be, so such a path would scatter databases, or land one where the user never looks. An empty
 * or relative home directory (`HOME=""`) is refused for the same reason.
 */
function databasePath({ env, platform, homedir }: ConfigEnvironment, problems: ConfigProblem[]): { path: string; isDefault: boolean } | undefined {
  const path = platform === "win32" ? win32 : posix;
  const home = path.isAbsolute(homedir) ? homedir : undefined;
  const homeVariable = platform === "win32" ? "USERPROFILE" : "HOME";
  const configured = nonEmpty(env.API_KEYS_MCP_DB);
  if (configured === ":memory:") return { path: configured, isDefault: false };
  if (configured?.startsWith("~/")) {
    if (home !== undefined) return { path: path.join(home, configured.slice(2)), isDefault: false };
    problems.push({
      variable: "API_KEYS_MCP_DB",
      message: "API_KEYS_MCP_DB starts with ~/ but the home directory is empty or not an absolute path",
      fix: `set API_KEYS_MCP_DB to an absolute path that does not start with ~/, or start the server with ${homeVariable} set to the user's home directory`,
    });
    return undefined;
  }
  if (configured !== undefined) {
    if (path.isAbsolute(configured)) return { path: configured, isDefault: false };
    problems.push({
      variable: "API_KEYS_MCP_DB",
      message: "API_KEYS_MCP_DB must be an absolute path (MCP hosts start servers in unpredictable working directories)",
      fix: "set API_KEYS_MCP_DB to an absolute path (or one starting with ~/), or remove it to use the default location",
    });
    return undefined;
  }

  const dataDirectory = defaultDataDirectory(env, platform, home);
  if (dataDirectory !== undefined) return { path: path.join(dataDirectory, "api-keys-mcp", "keys.db"), isDefault: true };
  const alternative = platform === "win32" ? "APPDATA" : platform === "darwin" ? undefined : "XDG_DATA_HOME";
  problems.push({
    variable: "API_KEYS_MCP_DB",
    message: `API_KEYS_MCP_DB is not set and the home directory is empty or not an absolute path, so the key database has no safe default location`,
    fix:
      `set API_KEYS_MCP_DB to an absolute path${alternative ? ` (or ${alternative} to an absolute directory)` : ""}, ` +
      `or start the server with ${homeVariable} set to the user's home directory`,
  });
  return undefined;
}

/**
 * API_KEYS_MCP_DATABASE_URL selects PostgreSQL. Setting it beside API_KEYS_MCP_DB is a problem:
 * which store would the keys be in? The URL may leave the password out: node-postgres then
 * takes it from PGPASSWORD or ~/.pgpass.
 */
function loadDatabaseUrl({ env }: ConfigEnvironment, problems: ConfigProblem[]): string | undefined {
  const configured = nonEmpty(env.API_KEYS_MCP_DATABASE_URL);
  if (configured === undefined) return undefined;
  if (nonEmpty(env.API_KEYS_MCP_DB) !== undefined) {
    problems.push({
      variable: "API_KEYS_MCP_DATABASE_URL",
      message: "both API_KEYS_MCP_DATABASE_URL (PostgreSQL) and API_KEYS_MCP_DB (a SQLite file) are set",
      fix: "remove one of API_KEYS_MCP_DATABASE_URL and API_KEYS_MCP_DB, keeping the store the keys are in",
    });
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(configured);
  } catch {
    url = new URL("invalid:");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    problems.push({
      variable: "API_KEYS_MCP_DATABASE_URL",
      message: "API_KEYS_MCP_DATABASE_URL is not a PostgreSQL URL",
      fix: "set API_KEYS_MCP_DATABASE_URL to a URL such as postgres://user@host:5432/database (the password may come from PGPASSWORD)",
    });
    return undefined;
  }
  return configured;
}

/** A database URL as it may be shown in a log line: without its password. */
export function describeDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    parsed.search = "";
    return parsed.toString();
  } catch {
    return "(not a URL)";
  }
}

/** The platform's per-user data directory, from absolute settings only; undefined when there is none. */
function defaultDataDirectory(env: Record<string, string | undefined>, platform: NodeJS.Platform, home: string | undefined): string | undefined {
  const path = platform === "win32" ? win32 : posix;
  const absolute = (value: string | undefined) => (value !== undefined && path.isAbsolute(value) ? value : undefined);
  // A relative APPDATA or XDG_DATA_HOME is ignored, as the XDG specification requires for its own.
  if (platform === "win32") return absolute(nonEmpty(env.APPDATA)) ?? (home && path.join(home, "AppData", "Roaming"));
  if (platform === "darwin") return home && path.join(home, "Library", "Application Support");
  return absolute(nonEmpty(env.XDG_DATA_HOME)) ?? (home && path.join(home, ".local", "share"));
}

/**
 * A setting's value: the variable's own, or for a `*_FILE` variable the content of the file it
 * names (a problem, and undefined, when that file cannot be read).
 */
function settingValue(source: ConfigEnvironment, variable: string, problems: ConfigProblem[]): string | undefined {
  const value = source.env[variable]!;
  if (!variable.endsWith("_FILE")) return value;
  try {
    return source.readFile(value);
  } catch {
    problems.push({
      variable,
      message: `${variable}: the file it names cannot be read`,
      fix: `make the file named by ${variable} readable by the user the server runs as, or set ${variable} to the absolute path of the right file`,
    });
    return undefined;
  }
}

/** A secret's bytes. One written to a file with `echo` ends in a newline that is not part of it. */
function secretBytes(value: string): Uint8Array {
  return new TextEncoder().encode(value.replace(/\r?\n$/, ""));
}

/**
 * The audit key turns the audit log's hash chain into an HMAC chain: kept outside the database
 * (in the environment or a file), it stops anyone who can write the database from recomputing
 * a chain that verifies.
 */
function loadAuditKey(source: ConfigEnvironment, problems: ConfigProblem[]): Uint8Array | undefined {
  const present = ["API_KEYS_MCP_AUDIT_KEY", "API_KEYS_MCP_AUDIT_KEY_FILE"].filter((name) => nonEmpty(source.env[name]) !== undefined);
  if (present.length === 0) return undefined;
  const variable = present[0]!;
  if (present.length > 1) {
    problems.push({
      variable,
      message: "both API_KEYS_MCP_AUDIT_KEY and API_KEYS_MCP_AUDIT_KEY_FILE are set",
      fix: "remove one of API_KEYS_MCP_AUDIT_KEY and API_KEYS_MCP_AUDIT_KEY_FILE",
    });
    return undefined;
  }
  const value = settingValue(source, variable, problems);
  if (value === undefined) return undefined;
  const key = secretBytes(value);
  if (key.byteLength < SECRET_MIN_BYTES) {
    problems.push({
      variable,
      message: `${variable}: the audit key must be at least ${SECRET_MIN_BYTES} bytes`,
      fix: `set ${variable} to ${variable.endsWith("_FILE") ? "a file holding " : ""}a random secret of at least ${SECRET_MIN_BYTES} bytes, kept outside the database`,
    });
    return undefined;
  }
  return key;
}

const KEY_SOURCES = [
  "API_KEYS_MCP_JWT_SECRET",
  "API_KEYS_MCP_JWT_SECRET_FILE",
  "API_KEYS_MCP_JWT_PUBLIC_KEY",
  "API_KEYS_MCP_JWT_PUBLIC_KEY_FILE",
  "API_KEYS_MCP_JWKS_URL",
] as const;

function loadKeyMaterial(source: ConfigEnvironment, problems: ConfigProblem[]): KeyMaterial | undefined {
  const present = KEY_SOURCES.filter((name) => nonEmpty(source.env[name]) !== undefined);
  if (present.length === 0) {
    problems.push({
      variable: "API_KEYS_MCP_JWT_SECRET",
      message:
        "no token verification key is configured; set exactly one of API_KEYS_MCP_JWT_SECRET, " +
        "API_KEYS_MCP_JWT_PUBLIC_KEY or API_KEYS_MCP_JWKS_URL (or API_KEYS_MCP_JWT_SECRET_FILE / API_KEYS_MCP_JWT_PUBLIC_KEY_FILE)",
      fix:
        "set API_KEYS_MCP_JWT_SECRET (or API_KEYS_MCP_JWT_SECRET_FILE) to the HMAC secret your tokens are signed with, " +
        "or one of the others to your issuer's public key or JWKS URL",
    });
    return undefined;
  }
  if (present.length > 1) {
    const listed = `${present.slice(0, -1).join(", ")} and ${present.at(-1)!}`;
    problems.push({
      variable: present[0]!,
      message: `more than one token verification setting is set (${listed})`,
      fix: `remove ${present.length === 2 ? "one" : "all but one"} of ${listed}, keeping the one that matches how your tokens are signed`,
    });
    return undefined;
  }
  const variable = present[0]!;
  const fromFile = variable.endsWith("_FILE");
  const fail = (message: string, expected: string) => {
    problems.push({ variable, message: `${variable}: ${message}`, fix: `set ${variable} to ${fromFile ? `a file holding ${expected}` : expected}` });
    return undefined;
  };

  const value = settingValue(source, variable, problems);
  if (value === undefined) return undefined;

  if (variable.startsWith("API_KEYS_MCP_JWT_SECRET")) {
    const secret = secretBytes(value);
    if (secret.byteLength < SECRET_MIN_BYTES) {
      return fail(`the HMAC secret must be at least ${SECRET_MIN_BYTES} bytes`, `the secret your tokens are signed with (at least ${SECRET_MIN_BYTES} bytes)`);
    }
    return { kind: "secret", secret };
  }

  if (variable.startsWith("API_KEYS_MCP_JWT_PUBLIC_KEY")) {
    // Host config files often carry a PEM on one line with literal "\n" sequences.
    const pem = value.replace(/\\n/g, "\n");
    const publicPem = "the issuer's PEM public key (SPKI `-----BEGIN PUBLIC KEY-----` or an X.509 certificate)";
    if (/PRIVATE KEY/.test(pem)) return fail("this is a private key, which the server must not hold", `${publicPem}, never the private key`);
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch {
      return fail("not a PEM public key", publicPem);
    }
    const algorithms = algorithmsFor(key);
    if (!algorithms) {
      return fail(`unsupported key (${key.asymmetricKeyType ?? "unknown"})`, "an RSA (2048 bits or more), EC P-256/384/521 or Ed25519 public key");
    }
    return { kind: "public-key", key, algorithms };
  }

  const jwksUrl = "the https URL of your issuer's JWKS (plain http only on 127.0.0.1, ::1 or localhost)";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail("not a URL", jwksUrl);
  }
  const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    return fail("must use https (plain http is accepted only on 127.0.0.1, ::1 or localhost)", jwksUrl);
  }
  return { kind: "jwks", url };
}

/** The allow-list for a public key follows from its type, so `alg` can never pick the algorithm. */
function algorithmsFor(key: KeyObject): string[] | undefined {
  switch (key.asymmetricKeyType) {
    // jose refuses RSA keys under 2048 bits at verification time; refuse them here instead, where
    // the operator sees it, rather than blaming every token.
    case "rsa":
      return rsaLongEnough(key) ? ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] : undefined;
    case "rsa-pss":
      return rsaLongEnough(key) ? ["PS256", "PS384", "PS512"] : undefined;
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const alg = { prime256v1: "ES256", secp384r1: "ES384", secp521r1: "ES512" }[curve ?? ""];
      return alg ? [alg] : undefined;
    }
    case "ed25519":
      return ["EdDSA", "Ed25519"];
    default:
      return undefined;
  }
}

function rsaLongEnough(key: KeyObject): boolean {
  return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048;
}

// ---------------------------------------------------------------------------------------------
// Streamable HTTP (`serve --http`). Apart from the settings above: these matter only to the HTTP
// server, and a problem with them stops it from starting (an operator starts it, not an MCP host).

/** What `serve --http` listens on and how it presents itself. */
export interface HttpConfig {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The public URL of `/mcp` (RFC 9728 `resource`); unset: built from the address bound. */
  resourceUrl?: string;
  /** Authorization server issuer URLs advertised in the metadata document. */
  authorizationServers: string[];
  /** Host names accepted in the `Host` header besides the bound host and the loopback names. */
  allowedHosts: string[];
  /** Origins a browser may call from; a request with any other `Origin` is refused. */
  allowedOrigins: string[];
  /** Proxies whose `X-Forwarded-For` names the client (addresses, subnets, or loopback/linklocal/uniquelocal). */
  trustProxy: string[];
}

export const DEFAULT_HTTP_PORT = 8787;

const LOOPBACK_HOSTS = new Set(["localhost", "::1", "[::1]"]);
const PROXY_NAMES = new Set(["loopback", "linklocal", "uniquelocal"]);
const HOST_NAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Whether `host` (a name or an address) can only be reached from this machine. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host.toLowerCase()) || (isIPv4(host) && host.startsWith("127."));
}

/**
 * The HTTP settings, from the `serve --http` flags (which win) and the environment. Every
 * problem names the setting and the fix; the caller refuses to start when there is one.
 */
export function loadHttpConfig(
  env: Record<string, string | undefined>,
  flags: { host?: string; port?: string },
): { http: HttpConfig; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  // The message says what a valid value looks like; the fix is to give one.
  const problem = (variable: string, message: string, fix = `set ${variable} to a valid value, or remove it to use the default`) =>
    problems.push({ variable, message: `${variable}: ${message}`, fix });
  const list = (variable: string) =>
    (nonEmpty(env[variable]) ?? "")
      .split(",")
      .map((entry) => entry.trim())
      .filter(Boolean);

  const host = (flags.host ?? nonEmpty(env.API_KEYS_MCP_HTTP_HOST) ?? "127.0.0.1").trim().replace(/^\[(.*)\]$/, "$1");
  if (!(isIP(host) || HOST_NAME.test(host))) problem("API_KEYS_MCP_HTTP_HOST", "not an address or host name to listen on (--host)");

  const portText = (flags.port ?? nonEmpty(env.API_KEYS_MCP_HTTP_PORT) ?? String(DEFAULT_HTTP_PORT)).trim();
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 0 && port <= 65_535)) problem("API_KEYS_MCP_HTTP_PORT", "not a port number from 0 to 65535 (--port; 0 picks a free port)");

  let resourceUrl = nonEmpty(env.API_KEYS_MCP_RESOURCE_URL)?.trim();
  if (resourceUrl !== undefined && !isHttpUrl(resourceUrl, { fragment: false })) {
    problem("API_KEYS_MCP_RESOURCE_URL", "not an absolute http or https URL without a fragment, e.g. https://keys.example.com/mcp");
    resourceUrl = undefined;
  }

  const authorizationServers = list("API_KEYS_MCP_AUTHORIZATION_SERVERS");
  if (authorizationServers.some((url) => !isHttpUrl(url, { fragment: false }))) {
    problem("API_KEYS_MCP_AUTHORIZATION_SERVERS", "each entry must be an authorization server's issuer URL, e.g. https://auth.example.com");
  }

  const allowedHosts = list("API_KEYS_MCP_ALLOWED_HOSTS").map((entry) => entry.toLowerCase());
  if (allowedHosts.some((entry) => !(HOST_NAME.test(entry) || isIPv4(entry) || /^\[[0-9a-f:.]+\]$/.test(entry)))) {
    problem("API_KEYS_MCP_ALLOWED_HOSTS", "each entry must be a host name without scheme or port, e.g. keys.example.com (IPv6 in brackets)");
  }
  if (!isLoopbackHost(host) && allowedHosts.length === 0) {
    problem(
      "API_KEYS_MCP_ALLOWED_HOSTS",
      `the server would listen on ${host}, which is not a loopback address, and no host names are allowed: any name could reach it (DNS rebinding)`,
      "set API_KEYS_MCP_ALLOWED_HOSTS to the host names clients use to reach the server (e.g. keys.example.com), or listen on 127.0.0.1",
    );
  }

  const allowedOrigins = list("API_KEYS_MCP_ALLOWED_ORIGINS");
  if (allowedOrigins.some((origin) => !isOrigin(origin))) {
    problem("API_KEYS_MCP_ALLOWED_ORIGINS", "each entry must be an origin: scheme, host and optional port, no path, e.g. https://app.example.com");
  }

  const trustProxy = list("API_KEYS_MCP_TRUST_PROXY");
  if (trustProxy.some((entry) => !(PROXY_NAMES.has(entry) || isAddressOrSubnet(entry)))) {
    problem("API_KEYS_MCP_TRUST_PROXY", "each entry must be an address, a subnet such as 10.0.0.0/8, or loopback, linklocal or uniquelocal");
  }

  return {
    http: {
      host,
      port: Number.isNaN(port) ? DEFAULT_HTTP_PORT : port,
      resourceUrl,
      authorizationServers,
      allowedHosts,
      allowedOrigins: allowedOrigins.map((origin) => (isOrigin(origin) ? new URL(origin).origin : origin)),
      trustProxy,
    },
    problems,
  };
}

/**
 * The verification settings for the HTTP server. With a public key or a JWKS, tokens come from
 * an authorization server that serves other resources too, so when the resource URL is set a
 * token must name it in `aud` (or one of API_KEYS_MCP_JWT_AUDIENCE): a token issued for
 * another resource is refused (RFC 8707). An HMAC secret is this deployment's own (Hyperswitch
 * dashboard tokens carry no `aud`), so it is left as configured.
 */
export function withResourceAudience(auth: AuthConfig, resourceUrl: string | undefined): AuthConfig {
  if (resourceUrl === undefined || auth.keyMaterial.kind === "secret") return auth;
  return { ...auth, audience: [resourceUrl, ...(auth.audience ?? [])] };
}

function isHttpUrl(text: string, { fragment }: { fragment: boolean }): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "https:" || url.protocol === "http:") && (fragment || url.hash === "") && url.username === "" && url.password === "";
  } catch {
    return false;
  }
}

function isOrigin(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "https:" || url.protocol === "http:") && url.origin === text.replace(/\/$/, "").toLowerCase();
  } catch {
    return false;
  }
}

function isAddressOrSubnet(text: string): boolean {
  const [address = "", prefix, ...rest] = text.split("/");
  if (rest.length > 0 || !isIP(address)) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (isIPv4(address) ? 32 : 128);
}
