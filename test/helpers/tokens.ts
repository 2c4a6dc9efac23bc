import { SignJWT, type JWTPayload } from "jose";

/** The HMAC secret test servers are configured with (at least 32 bytes, as A2 requires). */
export const TEST_SECRET = "test-secret-0123456789abcdef-0123456789";

export const READ_WRITE = "api_keys:read api_keys:write";

export interface SignOptions {
  secret?: string | Uint8Array;
  alg?: string;
  /** Seconds since the epoch the token is minted at (defaults to now). */
  now?: number;
  /** Lifetime in seconds; `null` leaves `exp` out. */
  ttl?: number | null;
  header?: Record<string, unknown>;
}

/** Signs `claims` with HMAC (HS256 by default) using the test secret, or `options.secret`. */
export async function signToken(claims: JWTPayload, options: SignOptions = {}): Promise<string> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const ttl = options.ttl === undefined ? 3600 : options.ttl;
  const body: JWTPayload = { iat: now, ...(ttl === null ? {} : { exp: now + ttl }), ...claims };
  const secret = options.secret ?? TEST_SECRET;
  const key = typeof secret === "string" ? new TextEncoder().encode(secret) : secret;
  return new SignJWT(body).setProtectedHeader({ alg: options.alg ?? "HS256", typ: "JWT", ...options.header }).sign(key);
}

/** A token for `merchant` acting as `sub`, with read and write permission unless `scope` says otherwise. */
export function merchantToken(merchant: string, sub = "user_1", scope: string = READ_WRITE, options: SignOptions = {}): Promise<string> {
  return signToken({ sub, merchant_id: merchant, scope }, options);
}

/**
 * A token shaped like a Hyperswitch dashboard token after two-factor sign-in: HS256, no iss/aud,
 * no permission claim, the role in `role_id`.
 */
export function hyperswitchToken(role: string, merchant = "merchant_hs", options: SignOptions = {}): Promise<string> {
  return signToken(
    {
      user_id: "9f4c1f7e-4c4e-4b33-a1f6-hyperswitch-user",
      merchant_id: merchant,
      role_id: role,
      org_id: "org_hs",
      profile_id: "pro_hs",
      tenant_id: "public",
    },
    { ...options, ttl: options.ttl ?? 2 * 86_400 },
  );
}

/** Hyperswitch's pre-login single-purpose token (e.g. for TOTP setup): no merchant, no role. */
export function hyperswitchSinglePurposeToken(options: SignOptions = {}): Promise<string> {
  return signToken({ user_id: "9f4c1f7e-user", purpose: "totp", origin: "sign_in", path: [], tenant_id: "public" }, options);
}
