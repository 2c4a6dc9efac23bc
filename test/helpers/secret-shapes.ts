import { createHmac } from "node:crypto";
import { CompactEncrypt } from "jose";
import { TEST_SECRET } from "./tokens.js";

const base64url = (text: string) => Buffer.from(text).toString("base64url");

/** The key `tokenWithHeader` signs with: the test servers' HMAC secret. */
export const HMAC_KEY = new TextEncoder().encode(TEST_SECRET);

/**
 * Protected headers written as different JSON encoders write them; each encodes to a different
 * start (`eyJ`, `eyAi`, `ew`, `ICB7`…), and jose accepts every one.
 */
export const SPACED_HEADERS: [label: string, header: string][] = [
  ["a header with spaces (eyAi…)", '{ "alg": "HS256", "typ": "JWT" }'],
  ["a pretty-printed header (ew…)", '{\n  "alg": "HS256"\n}'],
  ["a header after whitespace", '\r\n\t {"alg":"HS256"}'],
];

/** A real HS256 token (signed with `HMAC_KEY`) whose header is written exactly as `header`. */
export function tokenWithHeader(header: string): string {
  const signed = `${base64url(header)}.${base64url(JSON.stringify({ sub: "user_shapes", merchant_id: "merchant_shapes" }))}`;
  return `${signed}.${createHmac("sha256", HMAC_KEY).update(signed).digest("base64url")}`;
}

/** A real compact JWE: five segments, the first a JSON header like a JWS's. */
export function encryptedToken(): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode('{"sub":"user_shapes"}')).setProtectedHeader({ alg: "dir", enc: "A256GCM" }).encrypt(new Uint8Array(32).fill(7));
}
