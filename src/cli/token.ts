import { parseArgs } from "node:util";
import { SignJWT } from "jose";
import { loadConfig } from "../config.js";
import { parseDuration } from "../keys/duration.js";
import type { Io } from "./io.js";

const TOKEN_HELP = `Usage: api-keys-mcp token --merchant <id> --sub <user> [--scope <scopes>] [--ttl <duration>]

Mints a token signed with the configured HMAC secret (API_KEYS_MCP_JWT_SECRET or
API_KEYS_MCP_JWT_SECRET_FILE), for local setups where you are your own issuer. Prints
the token on stdout. Refuses when the server verifies with a public key or a JWKS:
then tokens come from your identity provider.

Options:
  --merchant <id>     tenant the token is for (the merchant_id claim, or API_KEYS_MCP_TENANT_CLAIM)
  --sub <user>        subject: who acts (recorded as created_by and in the audit log)
  --scope <scopes>    space-separated permissions (default "api_keys:read api_keys:write")
  --ttl <duration>    lifetime: a number with s, m, h or d, up to 30d (default 1h)
  -h, --help          show this help

Example:
  export API_KEYS_MCP_TOKEN="$(api-keys-mcp token --merchant merchant_123 --sub alice --ttl 8h)"
`;

const MAX_TTL_MS = 30 * 86_400_000;

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
  if (!values.merchant || !values.sub) return fail(`--merchant and --sub are required\n\n${TOKEN_HELP}`);

  const ttlMs = parseDuration(values.ttl) ?? 0;
  if (!(ttlMs >= 1000 && ttlMs <= MAX_TTL_MS)) return fail("--ttl must be like 30m, 8h or 7d, at most 30d");

  const { config, problems } = loadConfig({ env: io.env, platform: io.platform, homedir: io.homedir, readFile: io.readFileSync });
  const auth = config.auth;
  if (!auth) return fail(problems.find((p) => p.variable.includes("JWT") || p.variable.includes("JWKS"))?.message ?? "no verification key configured");
  if (auth.keyMaterial.kind !== "secret") {
    return fail("the server verifies tokens with a public key or a JWKS, so it cannot mint them; get a token from your identity provider");
  }

  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ [auth.tenantClaim]: values.merchant, scope: values.scope })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(values.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + Math.floor(ttlMs / 1000));
  if (auth.issuer !== undefined) jwt = jwt.setIssuer(auth.issuer);
  if (auth.audience !== undefined) jwt = jwt.setAudience(auth.audience);
  io.stdout.write(`${await jwt.sign(auth.keyMaterial.secret)}\n`);
  return 0;
}
