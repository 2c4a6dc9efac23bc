import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import { inject } from "vitest";

export interface PemKeyPair {
  publicKey: string;
  privateKey: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    rsaKeyPairs: PemKeyPair[];
  }
}

/** How many RSA pairs a test run has: enough for the most any one file uses at once. */
export const RSA_KEY_PAIRS = 2;

/**
 * The run's RSA-2048 pairs, made by globalSetup. One takes 0.1 to 1 s of CPU, and the files that
 * need several (an issuer's key, a rotated one, an attacker's) made them one after another;
 * here they are made once, at the same time on libuv's threads, alongside the build if one runs.
 */
export function generateRsaKeyPairs(count: number): Promise<PemKeyPair[]> {
  const generate = promisify(generateKeyPair);
  return Promise.all(
    Array.from({ length: count }, () =>
      generate("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } }),
    ),
  );
}

/**
 * RSA-2048 pair number `index` (0 to RSA_KEY_PAIRS - 1) of this run: different indices are
 * different keys; the same index is the same key in every file of the run, and a new key in
 * the next run.
 */
export function rsaKeyPair(index: number): { privateKey: KeyObject; publicKey: KeyObject } {
  const pair = inject("rsaKeyPairs")[index];
  if (pair === undefined) throw new Error(`there are ${RSA_KEY_PAIRS} RSA pairs; raise RSA_KEY_PAIRS for index ${index}`);
  return { privateKey: createPrivateKey(pair.privateKey), publicKey: createPublicKey(pair.publicKey) };
}
