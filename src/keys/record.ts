import type { Environment, KeyType } from "./format.js";

/** A stored key, timestamps in epoch milliseconds (UTC). Never holds the hash or plaintext. */
export interface KeyRecord {
  keyId: string;
  tenantId: string;
  name: string;
  description: string | null;
  type: KeyType;
  environment: Environment;
  prefix: string;
  createdAt: number;
  updatedAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
  usageCount: number;
  createdBy: string;
  /** `resource:action` strings, sorted; empty means unrestricted. */
  scopes: string[];
  /** The key this one replaced by rotation, and the key that replaced it. */
  rotatedFrom: string | null;
  rotatedTo: string | null;
}

/** How a new key's plaintext was handed over: in the result, in a file, or encrypted to the caller. */
export const DELIVERY_METHODS = ["inline", "file", "encrypt_to"] as const;
export type DeliveryMethod = (typeof DELIVERY_METHODS)[number];

/** What a backend stores for a new key: everything but what it derives (times, usage, links). */
export interface NewKey {
  keyId: string;
  name: string;
  description: string | null;
  type: KeyType;
  environment: Environment;
  prefix: string;
  hash: string;
  hashVersion: number;
  expiresAt: number | null;
  scopes: string[];
  /** How the plaintext is handed over: recorded in the audit event, not stored with the key. */
  delivery?: DeliveryMethod;
}

/** Fields to change; an absent field is left alone, `null` clears (description) or means never (expiresAt). */
export interface KeyPatch {
  name?: string;
  description?: string | null;
  expiresAt?: number | null;
  scopes?: string[];
}

/** The new secret for a rotation, and how the two keys' lives overlap. */
export interface Rotation {
  keyId: string;
  prefix: string;
  hash: string;
  hashVersion: number;
  /** Milliseconds the old key keeps working (0: it stops now). */
  graceMs: number;
  /** The new key's expiry; `undefined` gives it the old key's lifetime (expires_at − created_at) from now. */
  expiresAt?: number | null;
  /** The new key's scopes; `undefined` copies the old key's. */
  scopes?: string[];
  /** How the new plaintext is handed over: recorded in the audit event only. */
  delivery?: DeliveryMethod;
}
