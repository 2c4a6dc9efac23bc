import { newCursorKey } from "../../cursor.js";
import type { PostgresMigration } from "./index.js";

/**
 * The whole schema as SQLite has it after its migration 040, in PostgreSQL's terms. Times are
 * epoch milliseconds (BIGINT), as in the domain; row ids come from identity columns and give the
 * exact creation order that listings walk. The audit chain is appended under a lock on its one
 * head row, so rows from every instance form one line; triggers refuse UPDATE, DELETE and
 * TRUNCATE on the audit table (an UPSERT that would change a row fires the UPDATE trigger).
 */
export const initial: PostgresMigration = {
  version: 10,
  name: "initial",
  sql: `
    CREATE TABLE api_keys (
      seq           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      key_id        TEXT    NOT NULL UNIQUE,
      tenant_id     TEXT    NOT NULL,
      name          TEXT    NOT NULL,
      description   TEXT,
      type          TEXT    NOT NULL CHECK (type IN ('secret', 'publishable')),
      environment   TEXT    NOT NULL CHECK (environment IN ('test', 'live')),
      prefix        TEXT    NOT NULL,
      key_hash      TEXT    NOT NULL UNIQUE,
      hash_version  INTEGER NOT NULL,
      created_at    BIGINT  NOT NULL,
      updated_at    BIGINT  NOT NULL,
      expires_at    BIGINT,
      revoked_at    BIGINT,
      created_by    TEXT    NOT NULL,
      scopes        TEXT    NOT NULL DEFAULT '[]',
      rotated_from  TEXT    REFERENCES api_keys (key_id),
      rotated_to    TEXT    REFERENCES api_keys (key_id)
    );
    CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, seq);
    CREATE INDEX api_keys_unrevoked ON api_keys (tenant_id, seq) WHERE revoked_at IS NULL;
    CREATE INDEX api_keys_revoked ON api_keys (tenant_id, seq) WHERE revoked_at IS NOT NULL;
    CREATE INDEX api_keys_by_environment ON api_keys (tenant_id, environment, seq);
    CREATE INDEX api_keys_by_type ON api_keys (tenant_id, type, seq);

    CREATE TABLE key_usage (
      key_seq       BIGINT PRIMARY KEY,
      usage_count   BIGINT NOT NULL,
      last_used_at  BIGINT
    );

    CREATE TABLE audit_events (
      seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      event_id     TEXT   NOT NULL UNIQUE,
      occurred_at  BIGINT NOT NULL,
      action       TEXT   NOT NULL,
      outcome      TEXT   NOT NULL CHECK (outcome IN ('success', 'denied')),
      tenant_id    TEXT,
      actor        TEXT,
      key_id       TEXT,
      tool         TEXT,
      reason       TEXT,
      changes      TEXT,
      client_name     TEXT,
      client_version  TEXT,
      prev_hash    TEXT   NOT NULL,
      hash         TEXT   NOT NULL,
      hash_alg     TEXT   NOT NULL CHECK (hash_alg IN ('sha256', 'hmac-sha256'))
    );
    CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, occurred_at, seq);
    CREATE INDEX audit_events_by_action ON audit_events (tenant_id, action, occurred_at, seq);
    CREATE INDEX audit_events_by_key ON audit_events (key_id, occurred_at, seq);

    -- The chain's head: locked FOR UPDATE by every append, so appends from all instances queue
    -- on it and each reads the hash the one before it wrote.
    CREATE TABLE audit_head (
      id    INTEGER PRIMARY KEY CHECK (id = 1),
      hash  TEXT NOT NULL
    );
    INSERT INTO audit_head (id, hash) VALUES (1, repeat('0', 64));

    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'audit_events is append-only';
    END;
    $$;
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
      FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
      FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

    -- Idempotency records (see src/keys/idempotency.ts): never the idempotency key itself, nor
    -- any plaintext; expired rows are deleted a bounded number at a time by key writes.
    CREATE TABLE idempotency_keys (
      tenant_id    TEXT   NOT NULL,
      tool         TEXT   NOT NULL CHECK (tool IN ('create_api_key', 'rotate_api_key')),
      key_hash     TEXT   NOT NULL,
      fingerprint  TEXT   NOT NULL,
      key_id       TEXT   NOT NULL REFERENCES api_keys (key_id),
      delivery     TEXT   NOT NULL CHECK (delivery IN ('inline', 'file', 'encrypt_to')),
      created_at   BIGINT NOT NULL,
      expires_at   BIGINT NOT NULL,
      PRIMARY KEY (tenant_id, tool, key_hash)
    );
    CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);

    CREATE TABLE store_meta (
      name   TEXT PRIMARY KEY,
      value  BYTEA NOT NULL
    );
  `,
  run: async (client) => {
    await client.query("INSERT INTO store_meta (name, value) VALUES ('cursor_key', $1)", [newCursorKey()]);
  },
};
