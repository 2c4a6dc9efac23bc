import { customAlphabet } from "nanoid";

/**
 * API key format (K1, docs/requirements.md): `{sk|pk}_{test|live}_{body}`, body = 26 random base62 characters
 * followed by a 6-character base62 CRC-32 of everything before it. The checksum lets a malformed
 * or mistyped key be refused without a database lookup, and lets secret scanners cut false
 * positives; it is not a security control (the 26 random characters, ~154 bits, are).
 */
export const KEY_TYPES = ["secret", "publishable"] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export const ENVIRONMENTS = ["test", "live"] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

/** Digit order for base62: `0-9A-Za-z`, as K1 requires for the checksum. */
export const BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** The regular expression published in the README for secret scanners. */
export const API_KEY_PATTERN = /^(sk|pk)_(test|live)_[0-9A-Za-z]{32}$/;

const RANDOM_LENGTH = 26;
const CHECKSUM_LENGTH = 6;

const TYPE_TAGS: Record<KeyType, string> = { secret: "sk", publishable: "pk" };
const BASE62_CODES = Array.from(BASE62_ALPHABET, (digit) => digit.charCodeAt(0));

// nanoid's customAlphabet draws from the CSPRNG and rejects out-of-range bytes, so every
// character is uniform over the 62 symbols (no modulo bias).
const randomBody = customAlphabet(BASE62_ALPHABET, RANDOM_LENGTH);

export interface ParsedApiKey {
  type: KeyType;
  environment: Environment;
}

/** CRC-32 (IEEE, reflected, polynomial 0xEDB88320) by table, one entry per byte value. */
const CRC_TABLE = Int32Array.from({ length: 256 }, (_, byte) => {
  let value = byte;
  for (let bit = 0; bit < 8; bit++) value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
  return value;
});

/**
 * CRC-32 of the first `end` characters of an ASCII text (a key's characters are), as an unsigned
 * number. In JavaScript rather than zlib's: on the verification path the call into C++ and the
 * text's conversion to bytes cost more than the 34 table steps.
 */
function crc32Ascii(text: string, end: number): number {
  let crc = -1;
  for (let i = 0; i < end; i++) crc = CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

/** CRC-32 (IEEE) of an ASCII `text` as 6 base62 digits, most significant first, left-padded with `0`. */
export function checksum(text: string): string {
  let value = crc32Ascii(text, text.length);
  let digits = "";
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    digits = BASE62_ALPHABET.charAt(value % 62) + digits;
    value = Math.floor(value / 62);
  }
  return digits;
}

/** A fresh plaintext key. Only the result (or delivery) of the create or rotate call that made it ever carries it. */
export function generateApiKey(type: KeyType, environment: Environment): string {
  const head = `${TYPE_TAGS[type]}_${environment}_${randomBody()}`;
  return head + checksum(head);
}

const SECRET_TEST: ParsedApiKey = Object.freeze({ type: "secret", environment: "test" });
const SECRET_LIVE: ParsedApiKey = Object.freeze({ type: "secret", environment: "live" });
const PUBLISHABLE_TEST: ParsedApiKey = Object.freeze({ type: "publishable", environment: "test" });
const PUBLISHABLE_LIVE: ParsedApiKey = Object.freeze({ type: "publishable", environment: "live" });
const S = "s".charCodeAt(0);
const T = "t".charCodeAt(0);

/**
 * Type and environment of a well-formed key whose checksum matches; `undefined` otherwise.
 * On the verification hot path: the checksum is compared digit by digit, without building it,
 * and nothing is allocated.
 */
export function parseApiKey(candidate: string): ParsedApiKey | undefined {
  if (!API_KEY_PATTERN.test(candidate)) return undefined;
  const end = candidate.length;
  let value = crc32Ascii(candidate, end - CHECKSUM_LENGTH);
  for (let i = end - 1; i >= end - CHECKSUM_LENGTH; i--) {
    if (candidate.charCodeAt(i) !== BASE62_CODES[value % 62]) return undefined;
    value = Math.floor(value / 62);
  }
  // The pattern leaves two choices each: sk or pk, test or live.
  if (candidate.charCodeAt(0) === S) return candidate.charCodeAt(3) === T ? SECRET_TEST : SECRET_LIVE;
  return candidate.charCodeAt(3) === T ? PUBLISHABLE_TEST : PUBLISHABLE_LIVE;
}

/** Display prefix (K3): type, environment and the first 4 body characters, e.g. `sk_test_Ab3x`. */
export function displayPrefix(plaintext: string): string {
  return plaintext.slice(0, plaintext.indexOf("_", 3) + 5);
}
