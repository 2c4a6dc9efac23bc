import { createPublicKey, type KeyObject } from "node:crypto";
import { isIP, isIPv4 } from "node:net";
import { isAbsolute, join } from "node:path";
import * as z from "zod";
import { DEFAULT_ROLE_PERMISSIONS, PERMISSIONS, type Permission } from "./auth/principal.js";
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
  tenantClaim: string;
  rolePermissions: Record<string, Permission[]>;
}

export interface Config {
  /** Absolute path of the SQLite file, or `:memory:`. */
  dbPath: string;
  logLevel: LogLevel;
  /** Absent when the verification settings are missing or invalid (see `problems`). */
  auth?: AuthConfig;
  token: { value?: string; file?: string };
  rateLimits: { read: number; write: number; authFailures: number };
}

/** A setting that keeps the server from answering; every call then gets ERR_CONFIG naming it. */
export interface ConfigProblem {
  variable: string;
  /** Safe for a model to read: no value, path or key material. */
  message: string;
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

/**
 * The only reader of the environment. Never throws: a bad value becomes a problem, and the
 * server still starts, lists its tools and answers ERR_CONFIG (E3).
 */
export function loadConfig(source: ConfigEnvironment): { config: Config; problems: ConfigProblem[] } {
  const { env } = source;
  const problems: ConfigProblem[] = [];
  const setting = <T>(variable: string, schema: z.ZodType<T>, fallback: T, hint: string): T => {
    const raw = env[variable];
    if (raw === undefined || raw === "") return fallback;
    const parsed = schema.safeParse(raw);
    if (parsed.success) return parsed.data;
    problems.push({ variable, message: `${variable} is not valid: ${hint}` });
    return fallback;
  };

  const config: Config = {
    dbPath: databasePath(source, problems),
    logLevel: setting("API_KEYS_MCP_LOG_LEVEL", z.enum(LOG_LEVELS), "info", `use one of ${LOG_LEVELS.join(", ")}`),
    token: { value: nonEmpty(env.API_KEYS_MCP_TOKEN), file: nonEmpty(env.API_KEYS_MCP_TOKEN_FILE) },
    rateLimits: {
      read: setting("API_KEYS_MCP_RATE_LIMIT_READ", positiveInt, 300, "a whole number of calls per minute"),
      write: setting("API_KEYS_MCP_RATE_LIMIT_WRITE", positiveInt, 60, "a whole number of calls per minute"),
      authFailures: setting("API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES", positiveInt, 30, "a whole number of failures per minute"),
    },
  };

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
  const tenantClaim = setting("API_KEYS_MCP_TENANT_CLAIM", z.string().regex(/^[\w.:-]{1,64}$/), "merchant_id", "a claim name such as merchant_id");

  if (keyMaterial) {
    config.auth = {
      keyMaterial,
      issuer: nonEmpty(env.API_KEYS_MCP_JWT_ISSUER),
      audience: nonEmpty(env.API_KEYS_MCP_JWT_AUDIENCE)
        ?.split(",")
        .map((s) => s.trim())
        .filter(Boolean),
      tenantClaim,
      rolePermissions: { ...DEFAULT_ROLE_PERMISSIONS, ...rolePermissions },
    };
  }
  return { config, problems };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

/** S2: API_KEYS_MCP_DB if set (absolute, `~/` expanded), else a per-user data directory. */
function databasePath({ env, platform, homedir }: ConfigEnvironment, problems: ConfigProblem[]): string {
  const configured = nonEmpty(env.API_KEYS_MCP_DB);
  if (configured !== undefined) {
    if (configured === ":memory:") return configured;
    const expanded = configured.startsWith("~/") ? join(homedir, configured.slice(2)) : configured;
    if (isAbsolute(expanded)) return expanded;
    // MCP hosts often start servers in `/` or some other directory the user never chose.
    problems.push({
      variable: "API_KEYS_MCP_DB",
      message: "API_KEYS_MCP_DB must be an absolute path (MCP hosts start servers in unpredictable working directories)",
    });
  }
  return join(defaultDataDirectory(env, platform, homedir), "api-keys-mcp", "keys.db");
}

function defaultDataDirectory(env: Record<string, string | undefined>, platform: NodeJS.Platform, homedir: string): string {
  if (platform === "win32") return nonEmpty(env.APPDATA) ?? join(homedir, "AppData", "Roaming");
  if (platform === "darwin") return join(homedir, "Library", "Application Support");
  const xdg = nonEmpty(env.XDG_DATA_HOME);
  return xdg !== undefined && isAbsolute(xdg) ? xdg : join(homedir, ".local", "share");
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
    });
    return undefined;
  }
  if (present.length > 1) {
    problems.push({ variable: present[0]!, message: `set only one token verification setting, not ${present.join(" and ")}` });
    return undefined;
  }
  const variable = present[0]!;
  const fail = (message: string) => {
    problems.push({ variable, message: `${variable}: ${message}` });
    return undefined;
  };

  let value = source.env[variable]!;
  if (variable.endsWith("_FILE")) {
    try {
      value = source.readFile(value);
    } catch {
      return fail("the file it names cannot be read");
    }
  }

  if (variable.startsWith("API_KEYS_MCP_JWT_SECRET")) {
    // A secret written to a file with `echo` ends in a newline that is not part of it.
    const secret = new TextEncoder().encode(value.replace(/\r?\n$/, ""));
    if (secret.byteLength < SECRET_MIN_BYTES) return fail(`the HMAC secret must be at least ${SECRET_MIN_BYTES} bytes`);
    return { kind: "secret", secret };
  }

  if (variable.startsWith("API_KEYS_MCP_JWT_PUBLIC_KEY")) {
    // Host config files often carry a PEM on one line with literal "\n" sequences.
    const pem = value.replace(/\\n/g, "\n");
    if (/PRIVATE KEY/.test(pem)) return fail("this is a private key; give the server the public key only");
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch {
      return fail("not a PEM public key (SPKI `-----BEGIN PUBLIC KEY-----` or an X.509 certificate)");
    }
    const algorithms = algorithmsFor(key);
    if (!algorithms) {
      return fail(`unsupported key (${key.asymmetricKeyType ?? "unknown"}); use RSA of 2048 bits or more, EC P-256/384/521 or Ed25519`);
    }
    return { kind: "public-key", key, algorithms };
  }

  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail("not a URL");
  }
  const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    return fail("must use https (plain http is accepted only on 127.0.0.1, ::1 or localhost)");
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
  const problem = (variable: string, message: string) => problems.push({ variable, message: `${variable}: ${message}` });
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
      `the server would listen on ${host}, which is not a loopback address: set API_KEYS_MCP_ALLOWED_HOSTS to the host names clients use to reach it (e.g. keys.example.com), so that no other name (DNS rebinding) reaches it`,
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
