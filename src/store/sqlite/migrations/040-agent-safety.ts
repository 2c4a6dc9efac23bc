import type { Migration } from "./index.js";

/**
 * The MCP client each audit event came through (name and version as it declared them in
 * `initialize`; null for rows written before, and when the server never saw an `initialize`).
 * The hash chain covers the two columns only when one holds a value, so earlier rows verify
 * unchanged.
 *
 * Idempotency records: one per (tenant, tool, hash of the caller's idempotency key), naming the
 * key the first call made and the fingerprint of its arguments, recognised until `expires_at`
 * (24 hours). Expired rows are deleted a bounded number at a time by the writes that record a
 * claim, oldest expiry first: hence the index on `expires_at`. Neither the idempotency key nor
 * any plaintext is stored.
 */
export const agentSafety: Migration = {
  version: 40,
  name: "agent-safety",
  sql: `
    ALTER TABLE audit_events ADD COLUMN client_name TEXT;
    ALTER TABLE audit_events ADD COLUMN client_version TEXT;

    CREATE TABLE idempotency_keys (
      tenant_id    TEXT    NOT NULL,
      tool         TEXT    NOT NULL CHECK (tool IN ('create_api_key', 'rotate_api_key')),
      key_hash     TEXT    NOT NULL,
      fingerprint  TEXT    NOT NULL,
      key_id       TEXT    NOT NULL REFERENCES api_keys (key_id),
      delivery     TEXT    NOT NULL CHECK (delivery IN ('inline', 'file', 'encrypt_to')),
      created_at   INTEGER NOT NULL,
      expires_at   INTEGER NOT NULL,
      PRIMARY KEY (tenant_id, tool, key_hash)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
  `,
};
