import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newKeyId } from "../../src/keys/ids.js";
import { issueApiKey } from "../../src/keys/secret.js";
import { openDatabase } from "../../src/store/sqlite/database.js";
import { SqliteKeyRepository } from "../../src/store/sqlite/repository.js";
import { ODD_STRINGS } from "../adversarial/odd-strings.js";
import { tempDir } from "../helpers/spawn.js";

// Key rows are read as one JSON text built by SQLite (json_array) and parsed in JavaScript: every
// text a field can hold must come back exactly as SQLite stored it, through every read.
describe("key rows read back exactly, whatever their text fields hold", () => {
  let dir: ReturnType<typeof tempDir>;
  let repository: SqliteKeyRepository;

  beforeEach(() => {
    dir = tempDir();
    repository = new SqliteKeyRepository(openDatabase(join(dir.path, "keys.db")));
  });
  afterEach(async () => {
    await repository.close();
    dir.remove();
  });

  it.each(Object.entries(ODD_STRINGS))("%s", async (_label, text) => {
    const issued = issueApiKey("secret", "test");
    const keyId = newKeyId();
    await repository.createKey(
      { tenantId: text, subject: text, client: null },
      { keyId, name: text, description: text, type: "secret", environment: "test", prefix: issued.prefix, hash: issued.hash, hashVersion: 1, expiresAt: null, scopes: [text, "payments:read"] },
      1000,
    );
    // What SQLite holds (a lone surrogate was stored as U+FFFD), read column by column.
    const db = openDatabase(join(dir.path, "keys.db"));
    const stored = db.prepare("SELECT tenant_id, name, description, created_by, scopes FROM api_keys WHERE key_id = ?").get(keyId) as Record<string, string>;
    db.close();
    const expected = { tenantId: stored.tenant_id, name: stored.name, description: stored.description, createdBy: stored.created_by, scopes: JSON.parse(stored.scopes!) as string[] };

    const got = await repository.getKey(text, keyId);
    const found = await repository.findKeyByHash(issued.hash);
    const listed = (await repository.listKeys(text, { limit: 5, now: 2000 })).keys[0];
    for (const record of [got, found, listed]) expect(record).toMatchObject(expected);
  });
});
