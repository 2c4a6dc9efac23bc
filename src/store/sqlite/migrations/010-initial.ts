import type { Migration } from "./index.js";

/**
 * Keys and the audit log. `seq` (the rowid) gives the exact creation order that keyset
 * pagination walks, even for keys created within the same millisecond; rows are never deleted,
 * so it is never reused. Timestamps are epoch milliseconds (UTC).
 */
export const initial: Migration = {
  version: 10,
  name: "initial",
  sql: `
    CREATE TABLE api_keys (
      seq           INTEGER PRIMARY KEY,
      key_id        TEXT    NOT NULL UNIQUE,
      tenant_id     TEXT    NOT NULL,
      name          TEXT    NOT NULL,
      description   TEXT,
      type          TEXT    NOT NULL CHECK (type IN ('secret', 'publishable')),
      environment   TEXT    NOT NULL CHECK (environment IN ('test', 'live')),
      prefix        TEXT    NOT NULL,
      key_hash      TEXT    NOT NULL UNIQUE,
      hash_version  INTEGER NOT NULL,
      created_at    INTEGER NOT NULL,
      updated_at    INTEGER NOT NULL,
      expires_at    INTEGER,
      revoked_at    INTEGER,
      last_used_at  INTEGER,
      usage_count   INTEGER NOT NULL DEFAULT 0,
      created_by    TEXT    NOT NULL
    ) STRICT;

    CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, seq);

    CREATE TABLE audit_events (
      seq          INTEGER PRIMARY KEY,
      event_id     TEXT    NOT NULL UNIQUE,
      occurred_at  INTEGER NOT NULL,
      action       TEXT    NOT NULL,
      outcome      TEXT    NOT NULL CHECK (outcome IN ('success', 'denied')),
      tenant_id    TEXT,
      actor        TEXT,
      key_id       TEXT,
      tool         TEXT,
      reason       TEXT,
      changes      TEXT
    ) STRICT;

    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
  `,
};
