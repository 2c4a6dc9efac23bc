import { hash } from "node:crypto";
import { displayPrefix, generateApiKey, type Environment, type KeyType } from "./format.js";

/**
 * Version of the stored-hash scheme (K3). Keys carry 154 random bits, so a fast unsalted
 * SHA-256 is the right tool: nothing can be brute-forced, and verification stays one indexed
 * lookup. A future scheme (say, an HMAC with a server pepper) gets version 2 and old rows keep
 * verifying under version 1.
 */
export const HASH_VERSION = 1;

/** SHA-256 of the full plaintext, lowercase hex. */
export function hashApiKey(plaintext: string): string {
  return hash("sha256", plaintext, "hex");
}

export interface IssuedKey {
  /** Returned once to the caller, never stored. */
  plaintext: string;
  hash: string;
  hashVersion: number;
  prefix: string;
}

/** A new key with everything the store needs about it. */
export function issueApiKey(type: KeyType, environment: Environment): IssuedKey {
  const plaintext = generateApiKey(type, environment);
  return { plaintext, hash: hashApiKey(plaintext), hashVersion: HASH_VERSION, prefix: displayPrefix(plaintext) };
}
