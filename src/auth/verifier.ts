import {
  createRemoteJWKSet,
  errors,
  jwksCache,
  jwtVerify,
  type ExportedJWKSCache,
  type JWKSCacheInput,
  type JWTPayload,
  type JWTVerifyOptions,
} from "jose";
import type { Clock } from "../clock.js";
import type { AuthConfig } from "../config.js";
import { AppError } from "../errors.js";
import { formatDuration } from "../keys/duration.js";

/** Tokens longer than this are refused before any parsing (A2). */
export const MAX_TOKEN_BYTES = 8192;

/** How far the issuer's clock and ours may differ, for `exp` and `nbf`. */
export const CLOCK_TOLERANCE_SECONDS = 30;

const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"];
const ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"];

/** A token that verified, and until when that verdict may be reused without checking again. */
export interface VerifiedToken {
  claims: JWTPayload;
  /**
   * Milliseconds on the injected clock: the earliest of the token's `exp`, its `iat` plus the
   * maximum token age, and the end of the life of the JWKS copy that checked it. May already
   * have passed (see the JWKS note below): then the verdict holds for this call only.
   */
  validUntil: number;
}

export type VerifyToken = (token: string) => Promise<VerifiedToken>;

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
  /** The key set is re-fetched when older than this; a token checked against a copy is trusted no longer than that copy. */
  cacheMaxAgeMs: number;
}

export const DEFAULT_JWKS_TIMINGS: JwksTimings = { timeoutMs: 5000, cooldownMs: 30_000, cacheMaxAgeMs: 600_000 };

/**
 * A jose verifier for the configured key material (A2). The algorithm allow-list follows from
 * the key material, never from the token: an HMAC secret accepts only HS*, a public key or JWKS
 * only asymmetric algorithms, so neither `alg: none` nor the HS256-with-a-public-key confusion
 * can pass. `exp` is required, `nbf` honoured, clocks may differ by 30 seconds. With a maximum
 * token age, `iat` is required too and a token issued longer ago is refused.
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
    ...(auth.maxTokenAgeMs === undefined ? {} : { maxTokenAge: auth.maxTokenAgeMs / 1000 }),
  };
  const maxAgeMs = auth.maxTokenAgeMs ?? Infinity;
  /** Until when a verdict holds, as far as the token alone decides: its `exp` and its age. */
  const tokenBound = (claims: JWTPayload) => Math.min(claims.exp! * 1000, claims.iat === undefined ? Infinity : claims.iat * 1000 + maxAgeMs);

  let verify: (token: string, options: JWTVerifyOptions) => Promise<VerifiedToken>;
  if (material.kind === "jwks") {
    // jose records in this object when the copy of the set it holds was fetched (`uat`, real
    // milliseconds). A verdict reached with a copy holds only while that copy does: a key the
    // issuer withdraws must stop working once the copy that still had it ages out.
    const cache = {} as Partial<ExportedJWKSCache>;
    const keySet = createRemoteJWKSet(material.url, {
      timeoutDuration: jwks.timeoutMs,
      cooldownDuration: jwks.cooldownMs,
      cacheMaxAge: jwks.cacheMaxAgeMs,
      [jwksCache]: cache as JWKSCacheInput,
    });
    verify = async (token, opts) => {
      const fetchedBefore = cache.uat;
      const { payload } = await jwtVerify(token, keySet, opts);
      // If a fetch completed while this token was being checked, either copy may have checked
      // it; this verdict then holds for this call only, and the next call checks against the
      // copy in hand. Otherwise the copy fetched at `uat` did.
      const copyEnds = cache.uat === fetchedBefore && fetchedBefore !== undefined ? fetchedBefore + jwks.cacheMaxAgeMs : -Infinity;
      // jose dates its copies with the real clock; the verdict is kept on the injected one.
      return { claims: payload, validUntil: Math.min(tokenBound(payload), clock() + (copyEnds - Date.now())) };
    };
  } else {
    const key = material.kind === "secret" ? material.secret : material.key;
    verify = async (token, opts) => {
      const { payload } = await jwtVerify(token, key, opts);
      return { claims: payload, validUntil: tokenBound(payload) };
    };
  }

  return async (token) => {
    if (token.length > MAX_TOKEN_BYTES || Buffer.byteLength(token) > MAX_TOKEN_BYTES) throw invalid("it is larger than 8 KiB");
    try {
      return await verify(token, { ...options, currentDate: new Date(clock()) });
    } catch (error) {
      throw explain(error, auth, material.kind === "jwks" ? jwks : undefined);
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
function explain(error: unknown, auth: AuthConfig, remoteKeySet: JwksTimings | undefined): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof errors.JWTExpired && error.claim === "iat") {
    // Past the maximum age: the user's sign-in is too old, whatever `exp` says. Signing in again
    // is the remedy, as for an expired token.
    return new AppError(
      "ERR_AUTH_EXPIRED",
      `The token was issued more than ${formatDuration(auth.maxTokenAgeMs!)} ago, the longest this server accepts. Ask the user to sign in again and provide a fresh token.`,
      { cause: error },
    );
  }
  if (error instanceof errors.JWTExpired) {
    return new AppError("ERR_AUTH_EXPIRED", "The token has expired. Ask the user to sign in again and provide a fresh token.", { cause: error });
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const claim = error.claim;
    if (claim === "iat" && error.reason === "missing") {
      return invalid("it has no iat (issued-at) claim, which this server requires because it limits how old a token may be", error);
    }
    if (error.reason === "missing") return invalid(`it has no ${claim} claim`, error);
    if (claim === "iat" && error.reason === "check_failed") return invalid("it claims to be issued in the future (iat)", error);
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
