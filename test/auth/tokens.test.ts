import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from "jose";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startJwksServer, type JwksServer } from "../helpers/jwks-server.js";
import { startTestServer, testClock, type CallOutcome, type TestClock, type TestServer } from "../helpers/server.js";
import { session } from "../helpers/rpc.js";
import { spawnRaw, tempDir } from "../helpers/spawn.js";
import { readFileHead, TOKEN_FILE_MAX_BYTES } from "../../src/auth/token-source.js";
import {
  hyperswitchSinglePurposeToken,
  hyperswitchToken,
  merchantToken,
  READ_WRITE,
  signToken,
  TEST_SECRET,
} from "../helpers/tokens.js";

type Env = Record<string, string | undefined>;
type ToolName = "create_api_key" | "list_api_keys";

const HYPERSWITCH_USER = "9f4c1f7e-4c4e-4b33-a1f6-hyperswitch-user";
const ISSUER = "https://issuer.example.test";
const AUDIENCE = "api-keys-mcp";

type SigningKey = CryptoKey | KeyObject;

/** Key pairs generated once; the table below reads them lazily, after beforeAll has run. */
const keys = {} as Record<"rsa" | "otherRsa" | "ec" | "ed", { privateKey: SigningKey; pem: string }>;

beforeAll(async () => {
  // A node:crypto RSA key signs both RS256 and PS256 (a WebCrypto key is bound to one of them).
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  keys.rsa = { privateKey: rsa.privateKey, pem: rsa.publicKey.export({ type: "spki", format: "pem" }).toString() };
  for (const [name, alg] of [
    ["otherRsa", "RS256"],
    ["ec", "ES256"],
    ["ed", "EdDSA"],
  ] as const) {
    const pair = await generateKeyPair(alg);
    keys[name] = { privateKey: pair.privateKey, pem: await exportSPKI(pair.publicKey) };
  }
});

/** Signs with an asymmetric private key, minted at `now` (seconds) and valid for an hour. */
function signAsymmetric(privateKey: SigningKey, alg: string, claims: JWTPayload, now: number, kid?: string): Promise<string> {
  return new SignJWT({ iat: now, exp: now + 3600, ...claims })
    .setProtectedHeader({ alg, typ: "JWT", ...(kid === undefined ? {} : { kid }) })
    .sign(privateKey);
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** Replaces one character in the middle of the signature, so the decoded bytes surely differ. */
function tamperSignature(token: string): string {
  const [header, payload, signature] = token.split(".") as [string, string, string];
  const replacement = signature[10] === "A" ? "B" : "A";
  return `${header}.${payload}.${signature.slice(0, 10)}${replacement}${signature.slice(11)}`;
}

/** A correctly signed token whose length lands just above or just at/below `limit` characters. */
async function paddedToken(now: number, limit: number, side: "over" | "under"): Promise<string> {
  const mint = (padding: number) => signToken({ sub: "user_big", merchant_id: "merchant_big", scope: READ_WRITE, padding: "x".repeat(padding) }, { now });
  let padding = Math.floor(((limit - (await mint(0)).length) * 3) / 4);
  let token = await mint(padding);
  while (token.length > limit) token = await mint(--padding);
  while ((await mint(padding + 1)).length <= limit) token = await mint(++padding);
  return side === "under" ? token : mint(padding + 1);
}

const publicKeyEnv = (pem: string): Env => ({ API_KEYS_MCP_JWT_SECRET: undefined, API_KEYS_MCP_JWT_PUBLIC_KEY: pem });

/** What a call must produce: a coded refusal, a listing, or a created key of the given principal. */
type Expectation = { code: string; message?: RegExp } | { listed: true } | { created: { tenant: string; subject: string } };

interface TokenCase {
  label: string;
  env?: () => Env;
  tool?: ToolName;
  /** The `token` argument; undefined leaves it out. `now` is the test clock in seconds. */
  token: (now: number) => Promise<string | undefined> | string | undefined;
  expect: Expectation;
}

const READ_WRITE_ROLES = ["org_admin", "merchant_admin", "merchant_developer"];
const READ_ONLY_ROLES = ["merchant_view_only", "merchant_iam_admin", "merchant_operator", "merchant_customer_support"];
const DENIED_ROLES = ["profile_admin", "profile_view_only", "profile_developer", "some_custom_role", "__proto__", "constructor", "toString", ""];

const CASES: TokenCase[] = [
  { label: "no token anywhere", token: () => undefined, expect: { code: "ERR_AUTH_MISSING" } },
  { label: "malformed: one segment", token: () => "not-a-jwt", expect: { code: "ERR_AUTH_INVALID", message: /well-formed/ } },
  { label: "malformed: three segments of garbage", token: () => "abc.def.ghi", expect: { code: "ERR_AUTH_INVALID", message: /well-formed/ } },
  {
    label: "bad signature (one character changed)",
    token: async (now) => tamperSignature(await merchantToken("merchant_a", "user_a", READ_WRITE, { now })),
    expect: { code: "ERR_AUTH_INVALID", message: /signature/ },
  },
  {
    label: "signed with another secret",
    token: (now) => merchantToken("merchant_a", "user_a", READ_WRITE, { now, secret: "another-secret-of-at-least-32-bytes-long!" }),
    expect: { code: "ERR_AUTH_INVALID", message: /signature/ },
  },
  {
    label: "alg none with an empty signature",
    token: (now) => `${base64url({ alg: "none" })}.${base64url({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE, exp: now + 3600 })}.`,
    expect: { code: "ERR_AUTH_INVALID", message: /algorithm/ },
  },
  {
    label: "alg none, write tool",
    tool: "create_api_key",
    token: (now) => `${base64url({ alg: "none", typ: "JWT" })}.${base64url({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE, exp: now + 3600 })}.`,
    expect: { code: "ERR_AUTH_INVALID" },
  },
  {
    label: "HS256 signed with the PEM text when only a public key is configured (algorithm confusion)",
    env: () => publicKeyEnv(keys.rsa.pem),
    tool: "create_api_key",
    token: (now) => merchantToken("merchant_a", "user_a", READ_WRITE, { now, secret: keys.rsa.pem }),
    expect: { code: "ERR_AUTH_INVALID", message: /algorithm/ },
  },
  {
    label: "HS256 signed with the test secret when only a public key is configured",
    env: () => publicKeyEnv(keys.rsa.pem),
    token: (now) => merchantToken("merchant_a", "user_a", READ_WRITE, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /algorithm/ },
  },
  {
    label: "expired an hour ago",
    token: (now) => merchantToken("merchant_a", "user_a", READ_WRITE, { now: now - 7200, ttl: 3600 }),
    expect: { code: "ERR_AUTH_EXPIRED" },
  },
  {
    label: "expired 40 s ago (beyond the 30 s tolerance)",
    token: (now) => merchantToken("merchant_a", "user_a", READ_WRITE, { now: now - 100, ttl: 60 }),
    expect: { code: "ERR_AUTH_EXPIRED" },
  },
  {
    label: "expired 10 s ago (within the 30 s tolerance)",
    token: (now) => merchantToken("merchant_a", "user_a", READ_WRITE, { now: now - 70, ttl: 60 }),
    expect: { listed: true },
  },
  {
    label: "nbf 60 s in the future",
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE, nbf: now + 60 }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /not valid yet/ },
  },
  {
    label: "nbf 20 s in the future (within the 30 s tolerance)",
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE, nbf: now + 20 }, { now }),
    expect: { listed: true },
  },
  {
    label: "no exp claim",
    token: (now) => merchantToken("merchant_a", "user_a", READ_WRITE, { now, ttl: null }),
    expect: { code: "ERR_AUTH_INVALID", message: /no exp claim/ },
  },
  {
    label: "issued 9 h ago with API_KEYS_MCP_JWT_MAX_AGE=8h, though its exp is a day away",
    env: () => ({ API_KEYS_MCP_JWT_MAX_AGE: "8h" }),
    token: (now) => hyperswitchToken("merchant_admin", "merchant_hs", { now: now - 9 * 3600 }),
    expect: { code: "ERR_AUTH_EXPIRED", message: /issued more than 8h ago.*sign in again/ },
  },
  {
    label: "issued 8 h and 40 s ago with API_KEYS_MCP_JWT_MAX_AGE=8h (beyond the 30 s tolerance)",
    env: () => ({ API_KEYS_MCP_JWT_MAX_AGE: "8h" }),
    token: (now) => hyperswitchToken("merchant_admin", "merchant_hs", { now: now - 8 * 3600 - 40 }),
    expect: { code: "ERR_AUTH_EXPIRED" },
  },
  {
    label: "issued 7 h 59 min ago with API_KEYS_MCP_JWT_MAX_AGE=8h",
    env: () => ({ API_KEYS_MCP_JWT_MAX_AGE: "8h" }),
    token: (now) => hyperswitchToken("merchant_admin", "merchant_hs", { now: now - 8 * 3600 + 60 }),
    expect: { created: { tenant: "merchant_hs", subject: HYPERSWITCH_USER } },
  },
  {
    label: "no iat with API_KEYS_MCP_JWT_MAX_AGE set",
    env: () => ({ API_KEYS_MCP_JWT_MAX_AGE: "30m" }),
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE, iat: undefined }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /no iat \(issued-at\) claim/ },
  },
  {
    label: "iat 2 min in the future with API_KEYS_MCP_JWT_MAX_AGE set",
    env: () => ({ API_KEYS_MCP_JWT_MAX_AGE: "30m" }),
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE, iat: now + 120 }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /issued in the future/ },
  },
  {
    label: "no iat and no maximum age configured",
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE, iat: undefined }, { now }),
    expect: { listed: true },
  },
  {
    label: "wrong iss when an issuer is configured",
    env: () => ({ API_KEYS_MCP_JWT_ISSUER: ISSUER, API_KEYS_MCP_JWT_AUDIENCE: AUDIENCE }),
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE, iss: "https://evil.example.test", aud: AUDIENCE }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /issuer/ },
  },
  {
    label: "no iss when an issuer is configured",
    env: () => ({ API_KEYS_MCP_JWT_ISSUER: ISSUER }),
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /iss/ },
  },
  {
    label: "wrong aud when an audience is configured",
    env: () => ({ API_KEYS_MCP_JWT_ISSUER: ISSUER, API_KEYS_MCP_JWT_AUDIENCE: AUDIENCE }),
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE, iss: ISSUER, aud: "another-api" }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /audience/ },
  },
  {
    label: "no aud when an audience is configured",
    env: () => ({ API_KEYS_MCP_JWT_AUDIENCE: AUDIENCE }),
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /aud/ },
  },
  {
    label: "right iss and aud",
    env: () => ({ API_KEYS_MCP_JWT_ISSUER: ISSUER, API_KEYS_MCP_JWT_AUDIENCE: AUDIENCE }),
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE, iss: ISSUER, aud: AUDIENCE }, { now }),
    expect: { created: { tenant: "merchant_a", subject: "user_a" } },
  },
  {
    label: "aud is one of several configured audiences",
    env: () => ({ API_KEYS_MCP_JWT_AUDIENCE: "first-api, api-keys-mcp" }),
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a", scope: READ_WRITE, aud: ["other", AUDIENCE] }, { now }),
    expect: { listed: true },
  },
  {
    label: "over 8 KiB though correctly signed",
    token: (now) => paddedToken(now, 8192, "over"),
    expect: { code: "ERR_AUTH_INVALID", message: /8 KiB/ },
  },
  {
    label: "exactly at most 8 KiB and correctly signed",
    token: (now) => paddedToken(now, 8192, "under"),
    expect: { created: { tenant: "merchant_big", subject: "user_big" } },
  },
  {
    label: "read-only scope on a write tool",
    tool: "create_api_key",
    token: (now) => merchantToken("merchant_a", "user_a", "api_keys:read", { now }),
    expect: { code: "ERR_FORBIDDEN", message: /api_keys:write/ },
  },
  {
    label: "read-only scope on a read tool",
    token: (now) => merchantToken("merchant_a", "user_a", "api_keys:read", { now }),
    expect: { listed: true },
  },
  {
    label: "write-only scope on a read tool",
    token: (now) => merchantToken("merchant_a", "user_a", "api_keys:write", { now }),
    expect: { code: "ERR_FORBIDDEN", message: /api_keys:read/ },
  },
  {
    label: "no permission at all (unrelated scope)",
    token: (now) => merchantToken("merchant_a", "user_a", "openid profile", { now }),
    expect: { code: "ERR_FORBIDDEN", message: /api_keys:read/ },
  },
  {
    label: "no permission claim and no role",
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a" }, { now }),
    expect: { code: "ERR_FORBIDDEN" },
  },
  {
    label: "sub with an unpaired surrogate (a JSON escape no UTF-8 text can carry)",
    tool: "create_api_key",
    token: (now) => signToken({ sub: "user_\uD800", merchant_id: "merchant_a", scope: READ_WRITE }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /sub claim is not valid Unicode/ },
  },
  {
    label: "merchant_id with an unpaired surrogate",
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_\uDC00", scope: READ_WRITE }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /merchant_id claim is not valid Unicode/ },
  },
  {
    label: "sub with a NUL (no PostgreSQL text can hold it)",
    tool: "create_api_key",
    token: (now) => signToken({ sub: "user_a\u0000", merchant_id: "merchant_a", scope: READ_WRITE }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /sub claim is not valid Unicode/ },
  },
  {
    label: "merchant_id with a NUL",
    token: (now) => signToken({ sub: "user_a", merchant_id: "merchant_a\u0000", scope: READ_WRITE }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /merchant_id claim is not valid Unicode/ },
  },
  {
    label: "sub and merchant_id in 4-byte characters",
    token: (now) => signToken({ sub: "user_🔑", merchant_id: "merchant_𝒜", scope: READ_WRITE }, { now }),
    expect: { created: { tenant: "merchant_𝒜", subject: "user_🔑" } },
  },
  {
    label: "no sub and no user_id",
    token: (now) => signToken({ merchant_id: "merchant_a", scope: READ_WRITE }, { now }),
    expect: { code: "ERR_AUTH_INVALID", message: /no user/ },
  },
  ...READ_WRITE_ROLES.map(
    (role): TokenCase => ({
      label: `Hyperswitch ${role} creates`,
      token: (now) => hyperswitchToken(role, "merchant_hs", { now }),
      expect: { created: { tenant: "merchant_hs", subject: HYPERSWITCH_USER } },
    }),
  ),
  ...READ_ONLY_ROLES.flatMap((role): TokenCase[] => [
    { label: `Hyperswitch ${role} lists`, token: (now) => hyperswitchToken(role, "merchant_hs", { now }), expect: { listed: true } },
    {
      label: `Hyperswitch ${role} may not create`,
      tool: "create_api_key",
      token: (now) => hyperswitchToken(role, "merchant_hs", { now }),
      expect: { code: "ERR_FORBIDDEN", message: /api_keys:write/ },
    },
  ]),
  ...DENIED_ROLES.map(
    (role): TokenCase => ({
      label: `Hyperswitch role "${role}" may not list`,
      token: (now) => hyperswitchToken(role, "merchant_hs", { now }),
      expect: { code: "ERR_FORBIDDEN", message: /api_keys:read/ },
    }),
  ),
  {
    label: "Hyperswitch pre-login single-purpose token (no merchant_id)",
    token: (now) => hyperswitchSinglePurposeToken({ now }),
    expect: { code: "ERR_FORBIDDEN", message: /not bound to a merchant/ },
  },
  {
    label: "Bearer prefix",
    token: async (now) => `Bearer ${await merchantToken("merchant_a", "user_a", READ_WRITE, { now })}`,
    expect: { created: { tenant: "merchant_a", subject: "user_a" } },
  },
  {
    label: "lower-case bearer prefix with surrounding whitespace",
    token: async (now) => `  bearer   ${await merchantToken("merchant_a", "user_a", READ_WRITE, { now })}\n`,
    expect: { listed: true },
  },
  {
    label: "RS256 with the RSA public key configured",
    env: () => publicKeyEnv(keys.rsa.pem),
    token: (now) => signAsymmetric(keys.rsa.privateKey, "RS256", { sub: "user_rs", merchant_id: "merchant_rs", scope: READ_WRITE }, now),
    expect: { created: { tenant: "merchant_rs", subject: "user_rs" } },
  },
  {
    label: "PS256 with the RSA public key configured",
    env: () => publicKeyEnv(keys.rsa.pem),
    token: (now) => signAsymmetric(keys.rsa.privateKey, "PS256", { sub: "user_ps", merchant_id: "merchant_ps", scope: READ_WRITE }, now),
    expect: { listed: true },
  },
  {
    label: "ES256 with the P-256 public key configured",
    env: () => publicKeyEnv(keys.ec.pem),
    token: (now) => signAsymmetric(keys.ec.privateKey, "ES256", { sub: "user_es", merchant_id: "merchant_es", scope: READ_WRITE }, now),
    expect: { created: { tenant: "merchant_es", subject: "user_es" } },
  },
  {
    label: "EdDSA with the Ed25519 public key configured",
    env: () => publicKeyEnv(keys.ed.pem),
    token: (now) => signAsymmetric(keys.ed.privateKey, "EdDSA", { sub: "user_ed", merchant_id: "merchant_ed", scope: READ_WRITE }, now),
    expect: { created: { tenant: "merchant_ed", subject: "user_ed" } },
  },
  {
    label: "RSA public key given as one line with literal \\n sequences",
    env: () => publicKeyEnv(keys.rsa.pem.replace(/\n/g, "\\n")),
    token: (now) => signAsymmetric(keys.rsa.privateKey, "RS256", { sub: "user_rs", merchant_id: "merchant_rs", scope: READ_WRITE }, now),
    expect: { created: { tenant: "merchant_rs", subject: "user_rs" } },
  },
  {
    label: "RS256 signed by another RSA key",
    env: () => publicKeyEnv(keys.rsa.pem),
    token: (now) => signAsymmetric(keys.otherRsa.privateKey, "RS256", { sub: "user_rs", merchant_id: "merchant_rs", scope: READ_WRITE }, now),
    expect: { code: "ERR_AUTH_INVALID", message: /signature/ },
  },
  {
    label: "ES256 token when an RSA key is configured",
    env: () => publicKeyEnv(keys.rsa.pem),
    token: (now) => signAsymmetric(keys.ec.privateKey, "ES256", { sub: "user_es", merchant_id: "merchant_es", scope: READ_WRITE }, now),
    expect: { code: "ERR_AUTH_INVALID", message: /algorithm/ },
  },
  {
    label: "tenant claim renamed: token carries the renamed claim",
    env: () => ({ API_KEYS_MCP_TENANT_CLAIM: "hs_merchant" }),
    token: (now) => signToken({ sub: "user_t", hs_merchant: "merchant_renamed", merchant_id: "merchant_ignored", scope: READ_WRITE }, { now }),
    expect: { created: { tenant: "merchant_renamed", subject: "user_t" } },
  },
  {
    label: "tenant claim renamed: token carries only merchant_id",
    env: () => ({ API_KEYS_MCP_TENANT_CLAIM: "hs_merchant" }),
    token: (now) => signToken({ sub: "user_t", merchant_id: "merchant_a", scope: READ_WRITE }, { now }),
    expect: { code: "ERR_FORBIDDEN", message: /no hs_merchant claim/ },
  },
  {
    label: "tenant of two claims (tenant_id,merchant_id): a Hyperswitch token's key belongs to both",
    env: () => ({ API_KEYS_MCP_TENANT_CLAIM: "tenant_id,merchant_id" }),
    token: (now) => hyperswitchToken("merchant_admin", "merchant_hs", { now }),
    expect: { created: { tenant: '{"merchant_id":"merchant_hs","tenant_id":"public"}', subject: HYPERSWITCH_USER } },
  },
  {
    label: "tenant of two claims: a token with merchant_id but no tenant_id",
    env: () => ({ API_KEYS_MCP_TENANT_CLAIM: "tenant_id,merchant_id" }),
    token: (now) => merchantToken("merchant_a", "user_a", READ_WRITE, { now }),
    expect: { code: "ERR_FORBIDDEN", message: /no tenant_id claim/ },
  },
];

/** Asserts a coded refusal whose text starts with the code and never echoes the token. */
function expectRefusal(outcome: CallOutcome, code: string, token: string | undefined, message?: RegExp): string {
  expect(outcome.ok).toBe(false);
  if (outcome.ok) throw new Error("unreachable");
  expect(outcome.code).toBe(code);
  expect(outcome.text.startsWith(`${code}: `)).toBe(true);
  if (message) expect(outcome.text).toMatch(message);
  if (token !== undefined) expectNoTokenIn(outcome.text, token);
  return outcome.text;
}

/** Neither the token nor any of its longer parts (payload, signature) appears in `text`. */
function expectNoTokenIn(text: string, token: string): void {
  expect(text.includes(token.trim())).toBe(false);
  for (const part of token.trim().replace(/^bearer\s+/i, "").split(".")) {
    if (part.length >= 16) expect(text.includes(part)).toBe(false);
  }
}

function keyRows(server: TestServer): { tenant_id: string; created_by: string }[] {
  return server.db!.prepare("SELECT tenant_id, created_by FROM api_keys ORDER BY seq").all() as { tenant_id: string; created_by: string }[];
}

describe("token verification through the MCP client (A1–A4, E1, E2)", () => {
  it.each(CASES)("$label", async (testCase) => {
    const clock = testClock();
    const now = Math.floor(clock() / 1000);
    const token = await testCase.token(now);
    const server = await startTestServer({ env: testCase.env?.(), clock });
    try {
      const expectation = testCase.expect;
      const tool: ToolName = "created" in expectation ? "create_api_key" : (testCase.tool ?? "list_api_keys");
      const args: Record<string, unknown> = tool === "create_api_key" ? { name: "token case" } : {};
      if (token !== undefined) args.token = token;
      const outcome = await server.call(tool, args);

      if ("code" in expectation) {
        expectRefusal(outcome, expectation.code, token, expectation.message);
        expect(keyRows(server)).toEqual([]);
      } else if ("listed" in expectation) {
        expect(outcome).toMatchObject({ ok: true, data: { keys: [], next_cursor: null } });
      } else {
        expect(outcome.ok).toBe(true);
        if (!outcome.ok) return;
        expect(outcome.data.key.created_by).toBe(expectation.created.subject);
        expect(keyRows(server)).toEqual([{ tenant_id: expectation.created.tenant, created_by: expectation.created.subject }]);
      }
    } finally {
      await server.close();
    }
  });

  // A2 says "over 8 KiB": bytes, not UTF-16 code units. 5000 "é" are 10,000 bytes in 5000 characters.
  it("refuses unparsed a token over 8 KiB in bytes but not in characters", async () => {
    const server = await startTestServer();
    try {
      const token = "é".repeat(5000);
      expectRefusal(await server.call("list_api_keys", { token }), "ERR_AUTH_INVALID", token, /8 KiB/);
    } finally {
      await server.close();
    }
  });
});

describe("a tenant made of several claims (API_KEYS_MCP_TENANT_CLAIM=tenant_id,merchant_id)", () => {
  const env = { API_KEYS_MCP_TENANT_CLAIM: "tenant_id,merchant_id" };
  const tokenOf = (tenant: string, merchant: string, sub = "user_a") => signToken({ sub, tenant_id: tenant, merchant_id: merchant, scope: READ_WRITE });

  // Two Hyperswitch tenants may both have a merchant_hs: their keys must never meet.
  it("keeps apart two tenants with the same merchant id, and joins tokens whose every claim is equal", async () => {
    const server = await startTestServer({ env });
    try {
      const created = await server.call("create_api_key", { name: "tenant one", token: await tokenOf("tenant_one", "merchant_hs") });
      expect(created.ok).toBe(true);
      if (!created.ok) return;
      const keyId = created.data.key.key_id as string;
      const plaintext = created.data.api_key as string;

      const other = await tokenOf("tenant_two", "merchant_hs");
      expect(await server.call("list_api_keys", { token: other })).toMatchObject({ ok: true, data: { keys: [] } });
      expect(await server.call("get_api_key", { key_id: keyId, token: other })).toMatchObject({ ok: false, code: "ERR_NOT_FOUND" });
      expect(await server.call("verify_api_key", { api_key: plaintext, token: other })).toMatchObject({ ok: true, data: { valid: false, code: "NOT_FOUND" } });

      const sameTenant = await tokenOf("tenant_one", "merchant_hs", "user_b");
      const listed = await server.call("list_api_keys", { token: sameTenant });
      expect(listed.ok && listed.data.keys.map((key: { key_id: string }) => key.key_id)).toEqual([keyId]);
      // The log names the tenant by its stored id.
      expect(server.logs.filter((line) => line.msg === "tool_call").map((line) => line.tenant)).toContain(
        '{"merchant_id":"merchant_hs","tenant_id":"tenant_one"}',
      );
    } finally {
      await server.close();
    }
  });
});

describe("where the token comes from (A1)", () => {
  let dir: ReturnType<typeof tempDir>;
  let server: TestServer | undefined;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    dir.remove();
  });

  it("uses API_KEYS_MCP_TOKEN when the call has no token argument", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_TOKEN: await merchantToken("merchant_env", "user_env") } });
    expect((await server.call("create_api_key", { name: "from env" })).ok).toBe(true);
    expect(keyRows(server)).toEqual([{ tenant_id: "merchant_env", created_by: "user_env" }]);
  });

  it("reads API_KEYS_MCP_TOKEN_FILE on every call, so a rewritten file switches tenant", async () => {
    const file = join(dir.path, "token");
    writeFileSync(file, `${await merchantToken("merchant_one", "user_one")}\n`);
    server = await startTestServer({ env: { API_KEYS_MCP_TOKEN_FILE: file } });

    const created = await server.call("create_api_key", { name: "first tenant" });
    expect(created.ok).toBe(true);
    const listedBefore = await server.call("list_api_keys");
    expect(listedBefore.ok && listedBefore.data.keys.map((key: { name: string }) => key.name)).toEqual(["first tenant"]);

    writeFileSync(file, await merchantToken("merchant_two", "user_two"));
    const listedAfter = await server.call("list_api_keys");
    expect(listedAfter).toMatchObject({ ok: true, data: { keys: [], next_cursor: null } });
    const createdAfter = await server.call("create_api_key", { name: "second tenant" });
    expect(createdAfter.ok && createdAfter.data.key.created_by).toBe("user_two");
    expect(keyRows(server)).toEqual([
      { tenant_id: "merchant_one", created_by: "user_one" },
      { tenant_id: "merchant_two", created_by: "user_two" },
    ]);
  });

  it("accepts a Bearer prefix and a trailing newline in the token file", async () => {
    const file = join(dir.path, "token");
    writeFileSync(file, `Bearer ${await merchantToken("merchant_file", "user_file")}\r\n`);
    server = await startTestServer({ env: { API_KEYS_MCP_TOKEN_FILE: file } });
    expect((await server.call("create_api_key", { name: "from file" })).ok).toBe(true);
    expect(keyRows(server)).toEqual([{ tenant_id: "merchant_file", created_by: "user_file" }]);
  });

  it("prefers the argument to API_KEYS_MCP_TOKEN, and API_KEYS_MCP_TOKEN to the file", async () => {
    const file = join(dir.path, "token");
    writeFileSync(file, await merchantToken("merchant_file", "user_file"));
    server = await startTestServer({
      env: { API_KEYS_MCP_TOKEN: await merchantToken("merchant_env", "user_env"), API_KEYS_MCP_TOKEN_FILE: file },
    });
    await server.call("create_api_key", { name: "argument", token: await merchantToken("merchant_arg", "user_arg") });
    await server.call("create_api_key", { name: "environment" });
    expect(keyRows(server)).toEqual([
      { tenant_id: "merchant_arg", created_by: "user_arg" },
      { tenant_id: "merchant_env", created_by: "user_env" },
    ]);
  });

  it("prefers the argument to the file when API_KEYS_MCP_TOKEN is not set", async () => {
    const file = join(dir.path, "token");
    writeFileSync(file, await merchantToken("merchant_file", "user_file"));
    server = await startTestServer({ env: { API_KEYS_MCP_TOKEN_FILE: file } });
    await server.call("create_api_key", { name: "argument", token: await merchantToken("merchant_arg", "user_arg") });
    await server.call("create_api_key", { name: "file" });
    expect(keyRows(server)).toEqual([
      { tenant_id: "merchant_arg", created_by: "user_arg" },
      { tenant_id: "merchant_file", created_by: "user_file" },
    ]);
  });

  it("answers ERR_AUTH_MISSING without the path when the token file cannot be read", async () => {
    const file = join(dir.path, "missing-token-file");
    server = await startTestServer({ env: { API_KEYS_MCP_TOKEN_FILE: file } });
    const text = expectRefusal(await server.call("list_api_keys"), "ERR_AUTH_MISSING", undefined, /API_KEYS_MCP_TOKEN_FILE/);
    expect(text).not.toContain(dir.path);
    expect(text).not.toContain("missing-token-file");
  });

  it("refuses a token file larger than 64 KiB, whatever it starts with, without naming it", async () => {
    const file = join(dir.path, "not-a-token.log");
    writeFileSync(file, `${await merchantToken("merchant_file", "user_file")}\n${" ".repeat(TOKEN_FILE_MAX_BYTES)}`);
    server = await startTestServer({ env: { API_KEYS_MCP_TOKEN_FILE: file } });
    const text = expectRefusal(await server.call("list_api_keys"), "ERR_AUTH_MISSING", undefined, /larger than 64 KiB/);
    expect(text).not.toContain("not-a-token");
  });

  it("reads no more than 64 KiB and a byte of the token file", async () => {
    const file = join(dir.path, "big");
    writeFileSync(file, "x".repeat(1024 * 1024));
    expect((await readFileHead(file, TOKEN_FILE_MAX_BYTES + 1)).length).toBe(TOKEN_FILE_MAX_BYTES + 1);
    writeFileSync(file, "short\n");
    expect(await readFileHead(file, TOKEN_FILE_MAX_BYTES + 1)).toBe("short\n");
  });

  // Read whole on every call, a large file named by mistake costs its size in memory each time.
  // The server's resident memory is read from /proc, so this runs on Linux (CI) and is skipped elsewhere.
  it.runIf(process.platform === "linux")("keeps a spawned server's memory flat when the token file is 512 MB (Linux only: reads /proc)", async () => {
    const file = join(dir.path, "disk.img");
    writeFileSync(file, "");
    truncateSync(file, 512 * 1024 * 1024); // sparse: no disk space used
    const server = spawnRaw({ API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_TOKEN_FILE: file, API_KEYS_MCP_DB: join(dir.path, "big.db") });
    try {
      const rpc = session(server);
      await rpc.initialize();
      const result = await rpc.call("list_api_keys", {});
      expect(result.content[0]!.text).toMatch(/^ERR_AUTH_MISSING: .*larger than 64 KiB/);
      const peakKb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.child.pid}/status`, "utf8"))![1]);
      expect(peakKb).toBeLessThan(256 * 1024);
    } finally {
      server.child.stdin.end();
      await server.exited;
    }
  }, 20_000);

  it("answers ERR_AUTH_MISSING when the token file is empty", async () => {
    const file = join(dir.path, "token");
    writeFileSync(file, "\n");
    server = await startTestServer({ env: { API_KEYS_MCP_TOKEN_FILE: file } });
    expectRefusal(await server.call("list_api_keys"), "ERR_AUTH_MISSING", undefined);
  });

  // A blank `token` argument is a caller's mistake; silently acting as the server's own user
  // (API_KEYS_MCP_TOKEN) would let an agent working for one user act as another.
  it("does not fall back to API_KEYS_MCP_TOKEN when the token argument is blank", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_TOKEN: await merchantToken("merchant_env", "user_env") } });
    const outcome = await server.call("create_api_key", { name: "blank argument", token: "   " });
    expect(outcome.ok ? "ok" : outcome.code).toBe("ERR_AUTH_MISSING");
    expect(keyRows(server)).toEqual([]);
  });
});

describe("JWKS (A2)", () => {
  let jwks: JwksServer;
  let signing: { publicKey: CryptoKey; privateKey: CryptoKey };
  let stranger: { publicKey: CryptoKey; privateKey: CryptoKey };
  let clock: TestClock;
  let server: TestServer;

  beforeAll(async () => {
    signing = await generateKeyPair("RS256");
    stranger = await generateKeyPair("RS256");
    jwks = await startJwksServer([{ ...(await exportJWK(signing.publicKey)), kid: "key-1", alg: "RS256", use: "sig" }]);
  });
  afterAll(() => jwks.close());
  beforeEach(async () => {
    clock = testClock();
    server = await startTestServer({ env: { API_KEYS_MCP_JWT_SECRET: undefined, API_KEYS_MCP_JWKS_URL: jwks.url }, clock });
  });
  afterEach(() => server.close());

  const claims = { sub: "user_jwks", merchant_id: "merchant_jwks", scope: READ_WRITE };

  it("accepts a token signed by a key of the set", async () => {
    const before = jwks.requests;
    const token = await signAsymmetric(signing.privateKey, "RS256", claims, Math.floor(clock() / 1000), "key-1");
    expect((await server.call("create_api_key", { name: "jwks", token })).ok).toBe(true);
    expect(keyRows(server)).toEqual([{ tenant_id: "merchant_jwks", created_by: "user_jwks" }]);
    expect(jwks.requests).toBeGreaterThan(before);
  });

  it("refuses a token whose kid the set does not contain", async () => {
    const token = await signAsymmetric(stranger.privateKey, "RS256", claims, Math.floor(clock() / 1000), "key-unknown");
    expectRefusal(await server.call("list_api_keys", { token }), "ERR_AUTH_INVALID", token, /key set/);
  });

  it("refuses an HS256 token signed with the test secret", async () => {
    const token = await merchantToken("merchant_jwks", "user_jwks", READ_WRITE, { now: Math.floor(clock() / 1000), secret: TEST_SECRET });
    expectRefusal(await server.call("list_api_keys", { token }), "ERR_AUTH_INVALID", token, /algorithm/);
  });
});
