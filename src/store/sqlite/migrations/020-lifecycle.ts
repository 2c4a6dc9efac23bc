import { chainExistingRows } from "../audit-chain.js";
import type { Migration } from "./index.js";

/**
 * Phase 2: scopes (V3), rotation links (V2), indexes for audit listing (V4), and the audit hash
 * chain (S4), computed for the rows that already exist.
 */
export const lifecycle: Migration = {
  version: 20,
  name: "lifecycle",
  sql: `
    ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE api_keys ADD COLUMN rotated_from TEXT REFERENCES api_keys (key_id);
    ALTER TABLE api_keys ADD COLUMN rotated_to TEXT REFERENCES api_keys (key_id);

    ALTER TABLE audit_events ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit_events ADD COLUMN hash TEXT NOT NULL DEFAULT '';
    CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, seq);
    CREATE INDEX audit_events_by_key ON audit_events (key_id, seq);
  `,
  run: chainExistingRows,
};
