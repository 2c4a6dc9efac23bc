import { createHmac, generateKeyPairSync, type KeyObject } from "node:crypto";
import { FlattenedSign, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordFigures } from "../helpers/figures.js";
import { publicJwk, startJwksServer, type JwksServer } from "../helpers/jwks-server.js";
import { rsaKeyPair } from "../helpers/key-pairs.js";
import { startTestServer, type CallOutcome } from "../helpers/server.js";
import { READ_WRITE, TEST_SECRET } from "../helpers/tokens.js";

// Beyond test/auth/tokens.test.ts (which covers alg none, RS256-PEM-as-HMAC-secret, expiry,
// nbf, iss/aud, size and roles): algorithm confusion with every kind of public key and with a
// JWKS, and headers that try to smuggle in a key or an extension the server does not implement.

type Env = Record<string, string | undefined>;
const CLAIMS = { sub: "user_attacker", merchant_id: "merchant_victim", scope: READ_WRITE };

const b64 = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** A compact JWS signed with HMAC over whatever bytes the attacker believes the server uses as secret. */
function hmacToken(alg: "HS256" | "HS384" | "HS512", secret: Buffer | string, header: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const signingInput = `${b64({ alg, typ: "JWT", ...header })}.${b64({ ...CLAIMS, iat: now, exp: now + 3600 })}`;
  const digest = { HS256: "sha256", HS384: "sha384", HS512: "sha512" }[alg];
  return `${signingInput}.${createHmac(digest, secret).update(signingInput).digest("base64url")}`;
}

/** A JWS signed with a real private key, with any protected header (jose checks `crit` on signing too). */
async function signedToken(key: KeyObject, header: Record<string, unknown>, options: { payload?: string; crit?: Record<string, boolean> } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = options.payload ?? JSON.stringify({ ...CLAIMS, iat: now, exp: now + 3600 });
  // Flattened, then joined: the compact signer refuses b64:false, which an attacker is free to send.
  const jws = await new FlattenedSign(new TextEncoder().encode(payload)).setProtectedHeader(header as { alg: string }).sign(key, { crit: options.crit });
  return `${jws.protected}.${jws.payload}.${jws.signature}`;
}

interface Pair {
  name: string;
  alg: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  pem: string;
  jwk: JWK;
}

const pairs: Pair[] = [];
let jwks: JwksServer;
let attackerJwks: JwksServer;
let tried = 0;

beforeAll(async () => {
  for (const [name, alg, pair] of [
    ["RSA", "RS256", rsaKeyPair(0)],
    ["EC P-256", "ES256", generateKeyPairSync("ec", { namedCurve: "P-256" })],
    ["Ed25519", "EdDSA", generateKeyPairSync("ed25519")],
  ] as const) {
    const pem = pair.publicKey.export({ type: "spki", format: "pem" }).toString();
    pairs.push({ name, alg, ...pair, pem, jwk: { ...(await publicJwk(pair.publicKey)), kid: `kid-${alg}`, alg, use: "sig" } });
  }
  jwks = await startJwksServer(pairs.map((pair) => pair.jwk));
  attackerJwks = await startJwksServer();
});
afterAll(async () => {
  await jwks?.close();
  await attackerJwks?.close();
  recordFigures("token-confusion", { forged_tokens: tried, accepted: 0 });
});

/** Calls create_api_key with `token`; asserts the refusal, that nothing was created, and returns the text. */
async function expectRefused(env: Env, token: string, code: string, message: RegExp): Promise<void> {
  const server = await startTestServer({ env: { API_KEYS_MCP_JWT_SECRET: undefined, ...env } });
  try {
    const outcome: CallOutcome = await server.call("create_api_key", { name: "forged", token });
    tried += 1;
    expect(outcome.ok ? "OK" : outcome.text).toMatch(new RegExp(`^${code}: `));
    expect(outcome.ok ? "" : outcome.text).toMatch(message);
    expect(server.db!.prepare("SELECT COUNT(*) FROM api_keys").pluck().get()).toBe(0);
  } finally {
    await server.close();
  }
}

/** Every byte string an attacker might guess is the "secret" behind a public key. */
function secretGuesses(pair: Pair): [string, Buffer | string][] {
  const der = pair.publicKey.export({ type: "spki", format: "der" });
  return [
    ["the PEM text", pair.pem],
    ["the PEM without its final newline", pair.pem.trimEnd()],
    ["the PEM with literal \\n", pair.pem.replace(/\n/g, "\\n")],
    ["the DER bytes", der],
    ["the base64 body of the PEM", der.toString("base64")],
    ["the JWK as JSON", JSON.stringify(pair.jwk)],
    ["the JWK's x or n member", String(pair.jwk.n ?? pair.jwk.x)],
  ];
}

describe("algorithm confusion: HMAC tokens keyed with public material are refused", () => {
  it.each(["RSA", "EC P-256", "Ed25519"])("public key %s configured as PEM", async (name) => {
    const pair = pairs.find((p) => p.name === name)!;
    for (const [, secret] of secretGuesses(pair)) {
      for (const alg of ["HS256", "HS384", "HS512"] as const) {
        await expectRefused({ API_KEYS_MCP_JWT_PUBLIC_KEY: pair.pem }, hmacToken(alg, secret), "ERR_AUTH_INVALID", /algorithm/);
      }
    }
  });

  it.each(["RSA", "EC P-256", "Ed25519"])("JWKS publishing a %s key, HMAC token naming its kid", async (name) => {
    const pair = pairs.find((p) => p.name === name)!;
    const guesses = [...secretGuesses(pair), ["the whole JWKS document", JSON.stringify({ keys: pairs.map((p) => p.jwk) })] as [string, string]];
    for (const [, secret] of guesses) {
      await expectRefused({ API_KEYS_MCP_JWKS_URL: jwks.url }, hmacToken("HS256", secret, { kid: pair.jwk.kid }), "ERR_AUTH_INVALID", /algorithm/);
    }
  });
});

describe("hostile headers", () => {
  const rsa = () => pairs[0]!;
  const jwksEnv = (): Env => ({ API_KEYS_MCP_JWKS_URL: jwks.url });

  it("honours crit: a correctly signed token with an extension the server does not implement is refused", async () => {
    const hmacEnv = { API_KEYS_MCP_JWT_SECRET: TEST_SECRET };
    await expectRefused(hmacEnv, hmacToken("HS256", TEST_SECRET, { crit: ["x-must-understand"], "x-must-understand": true }), "ERR_AUTH_INVALID", /not support/);
    await expectRefused(hmacEnv, hmacToken("HS256", TEST_SECRET, { crit: ["exp"] }), "ERR_AUTH_INVALID", /refused/);
    await expectRefused(hmacEnv, hmacToken("HS256", TEST_SECRET, { crit: [] }), "ERR_AUTH_INVALID", /refused/);
    await expectRefused(hmacEnv, hmacToken("HS256", TEST_SECRET, { crit: "x-must-understand" }), "ERR_AUTH_INVALID", /refused/);
    const pair = rsa();
    const header = { alg: "RS256", kid: pair.jwk.kid, crit: ["x-must-understand"], "x-must-understand": true };
    await expectRefused(jwksEnv(), await signedToken(pair.privateKey, header, { crit: { "x-must-understand": true } }), "ERR_AUTH_INVALID", /not support/);
    // RFC 7797 unencoded payload: a JWT must not use it.
    const b64False = await signedToken(pair.privateKey, { alg: "RS256", kid: pair.jwk.kid, b64: false, crit: ["b64"] }, { payload: "payload-not-base64url" });
    await expectRefused(jwksEnv(), b64False, "ERR_AUTH_INVALID", /refused/);
  });

  it("ignores a key embedded in the header (jwk) or pointed at (jku, x5u): no fetch, no trust", async () => {
    const attacker = rsaKeyPair(1);
    const attackerJwk = { ...(await publicJwk(attacker.publicKey)), kid: rsa().jwk.kid, alg: "RS256" };
    attackerJwks.publish([attackerJwk]);
    for (const header of [
      { jwk: attackerJwk },
      { jku: attackerJwks.url },
      { x5u: attackerJwks.url },
      { jwk: attackerJwk, jku: attackerJwks.url },
    ]) {
      const token = await signedToken(attacker.privateKey, { alg: "RS256", kid: rsa().jwk.kid, ...header });
      await expectRefused(jwksEnv(), token, "ERR_AUTH_INVALID", /signature/);
      await expectRefused({ API_KEYS_MCP_JWT_PUBLIC_KEY: rsa().pem }, token, "ERR_AUTH_INVALID", /signature/);
    }
    expect(attackerJwks.requests).toBe(0);
  });

  it("refuses kids the key set does not have, whatever they look like", async () => {
    const attacker = rsaKeyPair(1);
    for (const kid of ["../../../etc/passwd", "' OR '1'='1", "kid-RS256\u0000", "KID-RS256", "x".repeat(4000), "", 12, null, ["kid-RS256"]]) {
      const token = await signedToken(attacker.privateKey, { alg: "RS256", kid });
      await expectRefused(jwksEnv(), token, "ERR_AUTH_INVALID", /refused/);
    }
  });

  it("refuses a token whose alg does not match the key its kid names", async () => {
    const [rsaPair, ecPair, edPair] = pairs as [Pair, Pair, Pair];
    await expectRefused(jwksEnv(), await signedToken(ecPair.privateKey, { alg: "ES256", kid: rsaPair.jwk.kid }), "ERR_AUTH_INVALID", /key set/);
    await expectRefused(jwksEnv(), await signedToken(rsaPair.privateKey, { alg: "PS256", kid: rsaPair.jwk.kid }), "ERR_AUTH_INVALID", /key set/);
    await expectRefused(jwksEnv(), await signedToken(edPair.privateKey, { alg: "EdDSA", kid: ecPair.jwk.kid }), "ERR_AUTH_INVALID", /key set/);
    await expectRefused(jwksEnv(), `${b64({ alg: "none", kid: rsaPair.jwk.kid })}.${b64(CLAIMS)}.`, "ERR_AUTH_INVALID", /algorithm/);
  });
});
