import { parseArgs } from "node:util";
import { SignJWT } from "jose";
import { loadConfig } from "../config.js";
import { formatDuration, parseDuration } from "../keys/duration.js";
import type { Io } from "./io.js";

const TOKEN_HELP = `Usage: api-keys-mcp token --merchant <id> --sub <user> [--claim <name>=<value>]... [--scope <scopes>] [--ttl <duration>]

Mints a token signed with the configured HMAC secret (API_KEYS_MCP_JWT_SECRET or
API_KEYS_MCP_JWT_SECRET_FILE), for local setups where you are your own issuer. Prints
the token on stdout. Refuses when the server verifies with a public key or a JWKS:
then tokens come from your identity provider.

Options:
  --merchant <id>        the tenant: the value of the tenant claim (merchant_id, or the one
                         claim API_KEYS_MCP_TENANT_CLAIM names); when it names several, the
                         value of merchant_id
  --claim <name=value>   the value of a tenant claim, for a tenant made of several claims
                         (API_KEYS_MCP_TENANT_CLAIM=tenant_id,merchant_id); repeat it, once
                         per claim; every tenant claim needs a value
  --sub <user>           subject: who acts (recorded as created_by and in the audit log)
  --scope <scopes>       space-separated permissions (default "api_keys:read api_keys:write")
  --ttl <duration>       lifetime: a number with s, m, h or d, up to 30d and up to
                         API_KEYS_MCP_JWT_MAX_AGE when that is set (default 1h)
  -h, --help             show this help

Examples:
  export API_KEYS_MCP_TOKEN="$(api-keys-mcp token --merchant merchant_123 --sub alice --ttl 8h)"
  API_KEYS_MCP_TENANT_CLAIM=tenant_id,merchant_id \\
    api-keys-mcp token --claim tenant_id=public --merchant merchant_123 --sub alice
`;

const MAX_TTL_MS = 30 * 86_400_000;

/** Settings whose problems would make the minted token wrong, or unsigned. */
const TOKEN_SETTING = /JWT|JWKS|TENANT_CLAIM/;

/** C2: `api-keys-mcp token`. Returns the exit code. */
export async function mintToken(args: string[], io: Io): Promise<number> {
  const fail = (message: string) => {
    io.stderr.write(`api-keys-mcp token: ${message}\n`);
    return 2;
  };
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        merchant: { type: "string" },
        claim: { type: "string", multiple: true, default: [] },
        sub: { type: "string" },
        scope: { type: "string", default: "api_keys:read api_keys:write" },
        ttl: { type: "string", default: "1h" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    return fail(`${(error as Error).message}\n\n${TOKEN_HELP}`);
  }
  if (values.help) {
    io.stdout.write(TOKEN_HELP);
    return 0;
  }
  if (!values.sub || (values.merchant === undefined && values.claim.length === 0)) return fail(`--merchant and --sub are required\n\n${TOKEN_HELP}`);

  const ttlMs = parseDuration(values.ttl) ?? 0;
  if (!(ttlMs >= 1000 && ttlMs <= MAX_TTL_MS)) return fail("--ttl must be like 30m, 8h or 7d, at most 30d");

  const { config, problems } = loadConfig({ env: io.env, platform: io.platform, homedir: io.homedir, readFile: io.readFileSync });
  const problem = problems.find((p) => TOKEN_SETTING.test(p.variable));
  if (problem) return fail(problem.message);
  const auth = config.auth;
  if (!auth) return fail("no verification key configured");
  if (auth.keyMaterial.kind !== "secret") {
    return fail("the server verifies tokens with a public key or a JWKS, so it cannot mint them; get a token from your identity provider");
  }
  if (auth.maxTokenAgeMs !== undefined && ttlMs > auth.maxTokenAgeMs) {
    const maxAge = formatDuration(auth.maxTokenAgeMs);
    return fail(`--ttl ${values.ttl} is longer than API_KEYS_MCP_JWT_MAX_AGE (${maxAge}), after which the server refuses the token; use --ttl ${maxAge} or less`);
  }

  const tenant = tenantClaims(auth.tenantClaims, values.merchant, values.claim);
  if (typeof tenant === "string") return fail(tenant);

  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ ...tenant, scope: values.scope })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(values.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + Math.floor(ttlMs / 1000));
  if (auth.issuer !== undefined) jwt = jwt.setIssuer(auth.issuer);
  if (auth.audience !== undefined) jwt = jwt.setAudience(auth.audience);
  io.stdout.write(`${await jwt.sign(auth.keyMaterial.secret)}\n`);
  return 0;
}

/**
 * The tenant claims of the token, from `--merchant` and `--claim name=value`, or what is wrong
 * with them. `--merchant` names the one tenant claim, or merchant_id among several.
 */
function tenantClaims(names: readonly string[], merchant: string | undefined, pairs: string[]): Record<string, string> | string {
  const listed = names.join(", ");
  const claims = new Map<string, string>();
  for (const pair of pairs) {
    const equals = pair.indexOf("=");
    const name = pair.slice(0, Math.max(equals, 0));
    const value = pair.slice(equals + 1);
    if (equals <= 0 || value === "") return `--claim must be <name>=<value> with a value, e.g. --claim ${names[0]}=<value>`;
    if (!names.includes(name)) return `--claim ${name}: the tenant is made of ${listed} (API_KEYS_MCP_TENANT_CLAIM), not ${name}`;
    if (claims.has(name)) return `--claim ${name} is given twice`;
    claims.set(name, value);
  }
  if (merchant !== undefined) {
    const name = names.length === 1 ? names[0]! : names.includes("merchant_id") ? "merchant_id" : undefined;
    if (name === undefined) return `--merchant cannot say which claim it sets: the tenant is made of ${listed}; give each with --claim <name>=<value>`;
    if (merchant === "") return "--merchant needs a value";
    if (claims.has(name)) return `--merchant and --claim ${name} both set ${name}; give one of them`;
    claims.set(name, merchant);
  }
  const missing = names.filter((name) => !claims.has(name));
  if (missing.length > 0) {
    return `the tenant is made of ${listed} (API_KEYS_MCP_TENANT_CLAIM): give ${missing.map((name) => `--claim ${name}=<value>`).join(" ")}`;
  }
  return Object.fromEntries(claims);
}
