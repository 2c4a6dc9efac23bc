import { closeSync, openSync, writeSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { newKeyId } from "../src/keys/ids.js";
import { planCreate } from "../src/keys/lifecycle.js";
import { issueApiKey } from "../src/keys/secret.js";
import { createAuditWriter } from "../src/store/sqlite/audit-writer.js";
import { openDatabase } from "../src/store/sqlite/database.js";

export interface SeedOptions {
  tenantId: string;
  count: number;
  /** `created_at` of the first key (epoch ms); each next key is a millisecond younger. */
  startAt: number;
  /** Where the plaintexts go, one per line, oldest first (the bench's verifiers read them). */
  keysFile: string;
}

export interface SeedResult {
  count: number;
  /** Wall time of the whole seeding, opening and closing included. */
  ms: number;
}

/** Plaintexts are written to their file in chunks of this many lines. */
const CHUNK = 10_000;

/**
 * A database as a long-lived deployment would have it, built as fast as SQLite allows: `count`
 * real keys (real plaintexts, SHA-256 hashes and random ids, from the functions the tools use),
 * each with its `api_key.created` audit row, hash-chained by the real audit writer, and a usage
 * row (every key has been used: verifications then update counts, as in a service's steady
 * state, rather than insert them). The schema is the real migrations'; the indexes are grown by
 * inserts, as a server grows them, not built afterwards by a sort (which packs them tighter than
 * any real file and would flatter bytes per key).
 *
 * Speed: one transaction, statements prepared once, no journal and no sync while seeding (the
 * file is disposable until it is complete), and a page cache large enough to hold the indexes
 * that random ids and hashes fill at random places. The file is put back in WAL mode at the end.
 */
export function seedDatabase(path: string, options: SeedOptions): SeedResult {
  const started = process.hrtime.bigint();
  const db = openDatabase(path);
  db.pragma("journal_mode = DELETE");
  db.pragma("journal_mode = OFF");
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -1048576");
  const insertKey = db.prepare(
    `INSERT INTO api_keys (key_id, tenant_id, name, description, type, environment, prefix, key_hash, hash_version,
       created_at, updated_at, expires_at, created_by, scopes)
     VALUES (?, ?, ?, NULL, 'secret', 'test', ?, ?, ?, ?, ?, NULL, ?, '[]')`,
  );
  const insertUsage = db.prepare("INSERT INTO key_usage (key_seq, usage_count, last_used_at) VALUES (?, ?, ?)");
  // The trigger that refuses an insert replacing an audit row doubles the cost of each insert;
  // no insert here can replace one, so it is put back, exactly as the migration wrote it, after.
  const trigger = db.prepare("SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name = 'audit_events_no_replace'").pluck().get() as string;
  db.exec("DROP TRIGGER audit_events_no_replace");
  const audit = createAuditWriter(db);
  const actor = { tenantId: options.tenantId, subject: "bench", client: null };
  const out = openSync(options.keysFile, "w", 0o600);
  try {
    db.transaction(() => {
      audit.beginTransaction();
      let lines: string[] = [];
      for (let i = 0; i < options.count; i++) {
        const issued = issueApiKey("secret", "test");
        const at = options.startAt + i;
        const { record, audit: entry } = planCreate(
          actor,
          {
            keyId: newKeyId(),
            name: `bench key ${i}`,
            description: null,
            type: "secret",
            environment: "test",
            prefix: issued.prefix,
            hash: issued.hash,
            hashVersion: issued.hashVersion,
            expiresAt: null,
            scopes: [],
          },
          at,
        );
        const seq = insertKey.run(record.keyId, record.tenantId, record.name, record.prefix, issued.hash, issued.hashVersion, at, at, record.createdBy)
          .lastInsertRowid;
        audit.append(entry, at);
        insertUsage.run(seq, 1 + (i % 97), at + 60_000);
        lines.push(issued.plaintext);
        if (lines.length === CHUNK) {
          writeSync(out, lines.join("\n") + "\n");
          lines = [];
        }
      }
      if (lines.length > 0) writeSync(out, lines.join("\n") + "\n");
      db.exec(trigger);
    })();
  } finally {
    closeSync(out);
  }
  db.pragma("journal_mode = WAL");
  db.close();
  return { count: options.count, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

// Run as a program (`node seed.js <db> <count> <keys file> <tenant>`), so that the seeding's
// page cache is a child's memory and not the benchmark's: prints the SeedResult as JSON.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [path, count, keysFile, tenantId] = process.argv.slice(2) as [string, string, string, string];
  const result = seedDatabase(path, { tenantId, count: Number(count), startAt: Date.UTC(2026, 0, 1), keysFile });
  process.stdout.write(JSON.stringify(result));
}
