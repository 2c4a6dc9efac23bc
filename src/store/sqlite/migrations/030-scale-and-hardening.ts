import type Database from "better-sqlite3";
import { newCursorKey } from "../../cursor.js";
import type { Migration } from "./index.js";

/**
 * Usage counts move to a narrow table of their own, keyed by the key's row id: a batch of
 * counts rewrites a few hundred small pages instead of most of the key table (every count is
 * kept). Indexes so that every list filter walks an index in page order, and audit events are
 * listed by time. The audit table refuses inserts that would replace a row (REPLACE deletes
 * without firing the DELETE trigger) and records how each row's hash was made. A random key,
 * kept here, seals page cursors.
 */
export const scaleAndHardening: Migration = {
  version: 30,
  name: "scale-and-hardening",
  sql: `
    CREATE TABLE key_usage (
      key_seq       INTEGER PRIMARY KEY,
      usage_count   INTEGER NOT NULL,
      last_used_at  INTEGER
    ) STRICT;
    INSERT INTO key_usage (key_seq, usage_count, last_used_at)
      SELECT seq, usage_count, last_used_at FROM api_keys WHERE usage_count > 0 OR last_used_at IS NOT NULL ORDER BY seq;
    ALTER TABLE api_keys DROP COLUMN usage_count;
    ALTER TABLE api_keys DROP COLUMN last_used_at;

    CREATE INDEX api_keys_unrevoked ON api_keys (tenant_id, seq) WHERE revoked_at IS NULL;
    CREATE INDEX api_keys_revoked ON api_keys (tenant_id, seq) WHERE revoked_at IS NOT NULL;
    CREATE INDEX api_keys_by_environment ON api_keys (tenant_id, environment, seq);
    CREATE INDEX api_keys_by_type ON api_keys (tenant_id, type, seq);

    DROP INDEX audit_events_by_tenant;
    DROP INDEX audit_events_by_key;
    CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, occurred_at, seq);
    CREATE INDEX audit_events_by_action ON audit_events (tenant_id, action, occurred_at, seq);
    CREATE INDEX audit_events_by_key ON audit_events (key_id, occurred_at, seq);

    ALTER TABLE audit_events ADD COLUMN hash_alg TEXT NOT NULL DEFAULT 'sha256' CHECK (hash_alg IN ('sha256', 'hmac-sha256'));
    CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
      WHEN EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq)
        OR EXISTS (SELECT 1 FROM audit_events WHERE event_id = NEW.event_id)
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

    CREATE TABLE store_meta (
      name   TEXT PRIMARY KEY,
      value  BLOB NOT NULL
    ) STRICT;
  `,
  run: (db: Database.Database) => {
    db.prepare("INSERT INTO store_meta (name, value) VALUES ('cursor_key', ?)").run(newCursorKey());
  },
};
