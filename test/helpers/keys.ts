import { newKeyId } from "../../src/keys/ids.js";
import { issueApiKey } from "../../src/keys/secret.js";
import type { NewKey } from "../../src/keys/record.js";

/** A new secret test key with a real id and hash, for writing through the repository directly. */
export function newKey(name: string): NewKey {
  const issued = issueApiKey("secret", "test");
  return { keyId: newKeyId(), name, description: null, type: "secret", environment: "test", prefix: issued.prefix, hash: issued.hash, hashVersion: 1, expiresAt: null, scopes: [] };
}
