import { newKeyId } from "../src/keys/ids.js";
import { issueApiKey } from "../src/keys/secret.js";
import { openDatabase } from "../src/store/sqlite/database.js";

/**
 * Writes `count` real keys (real plaintexts, hashes and ids) for `tenantId` into the database at
 * `path`, created with the real migrations, in one transaction. Returns the plaintexts, oldest
 * first. Seeding bypasses the tools (and so the audit log): it prepares data, it is not measured.
 */
export function seedKeys(path: string, tenantId: string, count: number, startAt: number): string[] {
  const db = openDatabase(path);
  const insert = db.prepare(
    `INSERT INTO api_keys (key_id, tenant_id, name, description, type, environment, prefix, key_hash, hash_version,
       created_at, updated_at, expires_at, created_by)
     VALUES (?, ?, ?, NULL, 'secret', 'test', ?, ?, ?, ?, ?, NULL, 'bench')`,
  );
  const plaintexts: string[] = [];
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const issued = issueApiKey("secret", "test");
      insert.run(newKeyId(), tenantId, `bench key ${i}`, issued.prefix, issued.hash, issued.hashVersion, startAt + i, startAt + i);
      plaintexts.push(issued.plaintext);
    }
  })();
  db.close();
  return plaintexts;
}
