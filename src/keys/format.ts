import { crc32 } from "node:zlib";
import { customAlphabet } from "nanoid";

/**
 * API key format (SPEC K1): `{sk|pk}_{test|live}_{body}`, body = 26 random base62 characters
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
const TYPES_BY_TAG: Record<string, KeyType> = { sk: "secret", pk: "publishable" };

// nanoid's customAlphabet draws from the CSPRNG and rejects out-of-range bytes, so every
// character is uniform over the 62 symbols (no modulo bias).
const randomBody = customAlphabet(BASE62_ALPHABET, RANDOM_LENGTH);

export interface ParsedApiKey {
  type: KeyType;
  environment: Environment;
}

/** CRC-32 (IEEE) of `text` as 6 base62 digits, most significant first, left-padded with `0`. */
export function checksum(text: string): string {
  let value = crc32(text);
  let digits = "";
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    digits = BASE62_ALPHABET.charAt(value % 62) + digits;
    value = Math.floor(value / 62);
  }
  return digits;
}

/** A fresh plaintext key. Only the create (and, later, rotate) result ever carries it. */
export function generateApiKey(type: KeyType, environment: Environment): string {
  const head = `${TYPE_TAGS[type]}_${environment}_${randomBody()}`;
  return head + checksum(head);
}

/** Type and environment of a well-formed key whose checksum matches; `undefined` otherwise. */
export function parseApiKey(candidate: string): ParsedApiKey | undefined {
  if (!API_KEY_PATTERN.test(candidate)) return undefined;
  const split = candidate.length - CHECKSUM_LENGTH;
  if (checksum(candidate.slice(0, split)) !== candidate.slice(split)) return undefined;
  const [tag, environment] = candidate.split("_") as [string, Environment];
  const type = TYPES_BY_TAG[tag];
  return type ? { type, environment } : undefined;
}

/** Display prefix (K3): type, environment and the first 4 body characters, e.g. `sk_test_Ab3x`. */
export function displayPrefix(plaintext: string): string {
  return plaintext.slice(0, plaintext.indexOf("_", 3) + 5);
}
