import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyOptions, type JWTVerifyResult } from "jose";
import type { Clock } from "../clock.js";
import type { AuthConfig } from "../config.js";
import { AppError } from "../errors.js";

/** Tokens longer than this are refused before any parsing (A2). */
export const MAX_TOKEN_BYTES = 8192;

/** How far the issuer's clock and ours may differ, for `exp` and `nbf`. */
export const CLOCK_TOLERANCE_SECONDS = 30;

const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"];
const ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"];

export type VerifyToken = (token: string) => Promise<JWTPayload>;

/**
 * How the remote key set (JWKS) is fetched, in real milliseconds (jose measures them with its
 * own clock, not the injected one). Options rather than settings: production uses the
 * defaults; tests shorten them so that rotation, timeouts and outages run in milliseconds.
 */
export interface JwksTimings {
  /** A fetch that takes longer fails with ERR_BUSY. */
  timeoutMs: number;
  /** After a fetch, a token naming an unknown `kid` waits this long before it may cause another. */
  cooldownMs: number;
  /** The key set is re-fetched when older than this; also how long a JWKS-verified token is trusted. */
  cacheMaxAgeMs: number;
}

export const DEFAULT_JWKS_TIMINGS: JwksTimings = { timeoutMs: 5000, cooldownMs: 30_000, cacheMaxAgeMs: 600_000 };

/**
 * A jose verifier for the configured key material (A2). The algorithm allow-list follows from
 * the key material, never from the token: an HMAC secret accepts only HS*, a public key or JWKS
 * only asymmetric algorithms, so neither `alg: none` nor the HS256-with-a-public-key confusion
 * can pass. `exp` is required, `nbf` honoured, clocks may differ by 30 seconds.
 */
export function createTokenVerifier(auth: AuthConfig, clock: Clock, jwks: JwksTimings = DEFAULT_JWKS_TIMINGS): VerifyToken {
  const material = auth.keyMaterial;
  const options: JWTVerifyOptions = {
    algorithms:
      material.kind === "secret" ? HMAC_ALGORITHMS : material.kind === "public-key" ? material.algorithms : ASYMMETRIC_ALGORITHMS,
    requiredClaims: ["exp"],
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    ...(auth.issuer === undefined ? {} : { issuer: auth.issuer }),
    ...(auth.audience === undefined ? {} : { audience: auth.audience }),
  };
  let verify: (token: string, options: JWTVerifyOptions) => Promise<JWTVerifyResult>;
  if (material.kind === "jwks") {
    const keySet = createRemoteJWKSet(material.url, {
      timeoutDuration: jwks.timeoutMs,
      cooldownDuration: jwks.cooldownMs,
      cacheMaxAge: jwks.cacheMaxAgeMs,
    });
    verify = (token, opts) => jwtVerify(token, keySet, opts);
  } else {
    const key = material.kind === "secret" ? material.secret : material.key;
    verify = (token, opts) => jwtVerify(token, key, opts);
  }

  return async (token) => {
    if (token.length > MAX_TOKEN_BYTES || Buffer.byteLength(token) > MAX_TOKEN_BYTES) throw invalid("it is larger than 8 KiB");
    try {
      const { payload } = await verify(token, { ...options, currentDate: new Date(clock()) });
      return payload;
    } catch (error) {
      throw explain(error, material.kind === "jwks" ? jwks : undefined);
    }
  };
}

function invalid(reason: string, cause?: unknown): AppError {
  return new AppError(
    "ERR_AUTH_INVALID",
    `The token was refused: ${reason}. Ask the user for a valid dashboard token; the same token will keep failing.`,
    { cause },
  );
}

/** jose's coded errors, as messages that say what went wrong without echoing the token. */
function explain(error: unknown, remoteKeySet: JwksTimings | undefined): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof errors.JWTExpired) {
    return new AppError("ERR_AUTH_EXPIRED", "The token has expired. Ask the user to sign in again and provide a fresh token.", { cause: error });
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const claim = error.claim;
    if (error.reason === "missing") return invalid(`it has no ${claim} claim`, error);
    if (claim === "nbf") return invalid("it is not valid yet (nbf is in the future)", error);
    if (claim === "iss") return invalid("its issuer (iss) is not the one this server accepts", error);
    if (claim === "aud") return invalid("its audience (aud) is not one this server accepts", error);
    return invalid(`its ${claim} claim is not valid`, error);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return invalid("its signature does not verify", error);
  if (error instanceof errors.JOSEAlgNotAllowed) return invalid("it is signed with an algorithm this server does not accept", error);
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    if (remoteKeySet) {
      // Not necessarily final: an issuer that has just started signing with a new key is seen
      // once the set is fetched again, which an unknown kid may cause only once per cooldown.
      const wait = Math.max(1, Math.ceil(remoteKeySet.cooldownMs / 1000));
      return new AppError(
        "ERR_AUTH_INVALID",
        `The token was refused: it is signed with a key the issuer's key set does not contain. If the issuer has just rotated its signing keys, retry in ${wait} seconds; otherwise ask the user for a valid token.`,
        { cause: error },
      );
    }
    return invalid("it is signed with a key the issuer's key set does not contain", error);
  }
  if (error instanceof errors.JWKSTimeout) {
    return new AppError("ERR_BUSY", "The issuer's key set (JWKS) did not answer in time, so the token could not be checked. Retry in a moment.", { cause: error });
  }
  if (error instanceof errors.JWKSInvalid) {
    return new AppError("ERR_CONFIG", "The key set at API_KEYS_MCP_JWKS_URL is not a valid JWKS. Ask the operator to check that setting.", { cause: error });
  }
  if (error instanceof errors.JOSENotSupported) return invalid("it uses an algorithm or header this server does not support", error);
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return invalid("it is not a well-formed signed JWT", error);
  if (remoteKeySet && (error instanceof errors.JOSEError || error instanceof TypeError)) {
    // Anything else from jose (a JWKS answering with an HTTP error) or fetch itself (JWKS down).
    return new AppError("ERR_BUSY", "The issuer's key set (JWKS) could not be fetched, so the token could not be checked. Retry in a moment.", { cause: error });
  }
  return invalid("it could not be verified", error);
}
