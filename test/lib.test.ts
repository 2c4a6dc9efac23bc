import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateApiKey, type Environment, type KeyType } from "../src/keys/format.js";
import { newKeyId } from "../src/keys/ids.js";
import { issueApiKey } from "../src/keys/secret.js";
import { openVerifier, VERIFY_CODES } from "../src/lib.js";
import { openDatabase } from "../src/store/sqlite/database.js";
import { SqliteKeyRepository } from "../src/store/sqlite/repository.js";
import { testClock } from "./helpers/server.js";
import { tempDir } from "./helpers/spawn.js";

const DAY = 86_400_000;
const START = Date.UTC(2026, 10, 25, 12, 0, 0);

describe("openVerifier, the library export (V1)", () => {
  let dir: ReturnType<typeof tempDir>;
  let dbPath: string;
  let keys: Record<string, { id: string; plaintext: string }>;

  beforeEach(async () => {
    dir = tempDir();
    dbPath = join(dir.path, "keys.db");
    const clock = testClock(START);
    const repository = new SqliteKeyRepository(openDatabase(dbPath));
    keys = {};
    const add = async (label: string, tenantId: string, expiresAt: number | null = null, scopes: string[] = [], type: KeyType = "secret", environment: Environment = "live") => {
      const issued = issueApiKey(type, environment);
      const keyId = newKeyId();
      await repository.createKey({ tenantId, subject: "setup", client: null }, { keyId, name: label, description: null, type, environment, prefix: issued.prefix, hash: issued.hash, hashVersion: 1, expiresAt, scopes }, clock());
      keys[label] = { id: keyId, plaintext: issued.plaintext };
    };
    await add("a", "merchant_a", null, ["payments:read"]);
    await add("b", "merchant_b");
    await add("expiring", "merchant_a", START + 30 * DAY);
    await add("revoked", "merchant_a");
    await add("publishable", "merchant_a", null, [], "publishable", "live");
    await add("test", "merchant_a", null, [], "secret", "test");
    await repository.revokeKey({ tenantId: "merchant_a", subject: "setup", client: null }, keys.revoked!.id, clock());
    await repository.close();
  });
  afterEach(() => dir.remove());

  it("answers every code across tenants, naming each key's merchant", async () => {
    const clock = testClock(START);
    const verifier = openVerifier({ db: dbPath, clock });
    try {
      expect(await verifier.verify(keys.a!.plaintext)).toMatchObject({
        valid: true,
        code: "VALID",
        merchant_id: "merchant_a",
        key: { key_id: keys.a!.id, scopes: ["payments:read"], status: "active" },
      });
      expect(await verifier.verify(keys.b!.plaintext)).toMatchObject({ valid: true, code: "VALID", merchant_id: "merchant_b" });
      expect(await verifier.verify(keys.revoked!.plaintext)).toMatchObject({ valid: false, code: "REVOKED", merchant_id: "merchant_a" });
      expect(await verifier.verify("sk_live_nope")).toEqual({ valid: false, code: "MALFORMED" });
      expect(await verifier.verify(generateApiKey("secret", "live"))).toEqual({ valid: false, code: "NOT_FOUND" });
      expect((await verifier.verify(keys.expiring!.plaintext)).code).toBe("VALID");
      clock.advance(30 * DAY);
      expect(await verifier.verify(keys.expiring!.plaintext)).toMatchObject({ valid: false, code: "EXPIRED", key: { status: "expired" } });
    } finally {
      await verifier.close();
    }
  });

  it("counts uses exactly, writing them in batches and on close", async () => {
    const clock = testClock(START);
    // A flush interval far beyond the test: only close() writes.
    const verifier = openVerifier({ db: dbPath, clock, usageFlushMs: 3_600_000 });
    const reader = new Database(dbPath, { readonly: true });
    const usage = reader.prepare(
      "SELECT COALESCE(u.usage_count, 0) AS count, u.last_used_at AS last FROM api_keys k LEFT JOIN key_usage u ON u.key_seq = k.seq WHERE k.key_id = ?",
    );
    try {
      for (let i = 1; i <= 100; i++) {
        clock.set(START + i);
        await verifier.verify(keys.a!.plaintext);
      }
      await verifier.verify(keys.revoked!.plaintext);
      expect(usage.get(keys.a!.id)).toEqual({ count: 0, last: null });
      await verifier.close();
      expect(usage.get(keys.a!.id)).toEqual({ count: 100, last: START + 100 });
      expect(usage.get(keys.revoked!.id)).toEqual({ count: 0, last: null });
    } finally {
      reader.close();
    }
  });

  it("refuses a key revoked by the server on its very next verification", async () => {
    const verifier = openVerifier({ db: dbPath, clock: testClock(START) });
    try {
      expect((await verifier.verify(keys.a!.plaintext)).code).toBe("VALID");
      const server = new SqliteKeyRepository(openDatabase(dbPath));
      await server.revokeKey({ tenantId: "merchant_a", subject: "admin", client: null }, keys.a!.id, START);
      await server.close();
      expect((await verifier.verify(keys.a!.plaintext)).code).toBe("REVOKED");
    } finally {
      await verifier.close();
    }
  });

  it("works on a lent better-sqlite3 handle and leaves it open", async () => {
    const db = new Database(dbPath);
    const verifier = openVerifier({ db });
    expect((await verifier.verify(keys.b!.plaintext)).code).toBe("VALID");
    await verifier.close();
    expect(db.open).toBe(true);
    expect(db.prepare("SELECT u.usage_count FROM key_usage u JOIN api_keys k ON k.seq = u.key_seq WHERE k.key_id = ?").pluck().get(keys.b!.id)).toBe(1);
    db.close();
  });

  // A publishable key is meant to be public, and a test key is handed to anyone testing: a
  // service that takes live secrets must be able to say so, or both pass as full access.
  it("refuses a key of another type or environment than the service requires, from its prefix alone", async () => {
    const db = new Database(dbPath);
    const verifier = openVerifier({ db, clock: testClock(START), usageFlushMs: 3_600_000 });
    const liveSecret = { type: "secret", environment: "live" } as const;
    try {
      expect(await verifier.verify(keys.a!.plaintext, liveSecret)).toMatchObject({ valid: true, code: "VALID", merchant_id: "merchant_a" });
      expect(await verifier.verify(keys.publishable!.plaintext, liveSecret)).toEqual({ valid: false, code: "WRONG_TYPE" });
      expect(await verifier.verify(keys.test!.plaintext, liveSecret)).toEqual({ valid: false, code: "WRONG_ENVIRONMENT" });
      // The type is checked first; a key that is not well-formed stays MALFORMED.
      expect(await verifier.verify(generateApiKey("publishable", "test"), liveSecret)).toEqual({ valid: false, code: "WRONG_TYPE" });
      expect(await verifier.verify(keys.publishable!.plaintext.slice(0, -1), liveSecret)).toEqual({ valid: false, code: "MALFORMED" });
      // Without a lookup: whether such a key exists, or is revoked, is not the service's business.
      expect(await verifier.verify(keys.revoked!.plaintext, { environment: "test" })).toEqual({ valid: false, code: "WRONG_ENVIRONMENT" });
      db.exec("DROP TABLE api_keys");
      expect(await verifier.verify(keys.publishable!.plaintext, liveSecret)).toEqual({ valid: false, code: "WRONG_TYPE" });
      expect(await verifier.verify(keys.test!.plaintext, liveSecret)).toEqual({ valid: false, code: "WRONG_ENVIRONMENT" });
      await expect(verifier.verify(keys.a!.plaintext, liveSecret)).rejects.toThrow();
    } finally {
      await verifier.close().catch(() => undefined);
      db.close();
    }
  });

  it("requires only what the options name, and counts no use for a refused kind", async () => {
    const verifier = openVerifier({ db: dbPath, clock: testClock(START), usageFlushMs: 3_600_000 });
    for (let i = 0; i < 3; i++) {
      expect((await verifier.verify(keys.publishable!.plaintext, { type: "secret" })).code).toBe("WRONG_TYPE");
      expect((await verifier.verify(keys.test!.plaintext, { environment: "live" })).code).toBe("WRONG_ENVIRONMENT");
    }
    expect(await verifier.verify(keys.test!.plaintext, { type: "secret" })).toMatchObject({ valid: true, code: "VALID" });
    expect(await verifier.verify(keys.publishable!.plaintext, { environment: "live" })).toMatchObject({ valid: true, code: "VALID" });
    expect(await verifier.verify(keys.publishable!.plaintext, {})).toMatchObject({ valid: true, code: "VALID" });
    await verifier.close();
    const reader = new Database(dbPath, { readonly: true });
    try {
      const count = reader.prepare("SELECT u.usage_count FROM key_usage u JOIN api_keys k ON k.seq = u.key_seq WHERE k.key_id = ?").pluck();
      expect([count.get(keys.test!.id), count.get(keys.publishable!.id)]).toEqual([1, 2]);
    } finally {
      reader.close();
    }
  });

  it("throws a TypeError for a requirement it does not know, rather than accepting every key", async () => {
    const verifier = openVerifier({ db: dbPath });
    try {
      for (const options of [{ type: "sk" }, { type: "Secret" }, { environment: "production" }, { environment: "sk_live" }, null, "secret"]) {
        await expect(verifier.verify(keys.a!.plaintext, options as never)).rejects.toThrow(TypeError);
      }
    } finally {
      await verifier.close();
    }
  });

  it("exports the codes verify can answer, the kind refusals included", () => {
    expect(VERIFY_CODES).toEqual(["VALID", "MALFORMED", "NOT_FOUND", "EXPIRED", "REVOKED", "WRONG_TYPE", "WRONG_ENVIRONMENT"]);
  });

  it("refuses a path with no database instead of creating an empty one", () => {
    const missing = join(dir.path, "typo.db");
    expect(() => openVerifier({ db: missing })).toThrow(/no database file/);
    expect(() => openVerifier({ db: 42 as never })).toThrow(TypeError);
  });

  it("rejects calls after close and non-string keys", async () => {
    const verifier = openVerifier({ db: dbPath });
    await expect(verifier.verify(undefined as never)).rejects.toThrow(TypeError);
    await verifier.close();
    await expect(verifier.verify(keys.a!.plaintext)).rejects.toThrow(/after close/);
  });

  it("lets a service that never calls close() exit: nothing the verifier keeps for its counts holds the process", () => {
    const root = fileURLToPath(new URL("..", import.meta.url));
    const script = `import { openVerifier } from "api-keys-mcp";
      const v = openVerifier({ db: ${JSON.stringify(dbPath)}, usageFlushMs: 3_600_000 });
      console.log((await v.verify(${JSON.stringify(keys.b!.plaintext)})).code);`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: root, encoding: "utf8", timeout: 20_000 });
    expect(out.trim()).toBe("VALID");
  });

  it("is the package's export: `import { openVerifier } from \"api-keys-mcp\"` with types", () => {
    const root = fileURLToPath(new URL("..", import.meta.url));
    const script = `import { openVerifier, API_KEY_PATTERN } from "api-keys-mcp";
      const v = openVerifier({ db: ${JSON.stringify(dbPath)} });
      const r = await v.verify(${JSON.stringify(keys.b!.plaintext)});
      await v.close();
      console.log(JSON.stringify({ code: r.code, merchant: r.merchant_id, pattern: API_KEY_PATTERN.source }));`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: root, encoding: "utf8" });
    expect(JSON.parse(out)).toEqual({ code: "VALID", merchant: "merchant_b", pattern: "^(sk|pk)_(test|live)_[0-9A-Za-z]{32}$" });
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { exports: Record<string, unknown> };
    expect(pkg.exports["."]).toEqual({ types: "./dist/src/lib.d.ts", default: "./dist/src/lib.js" });
    expect(readFileSync(join(root, "dist/src/lib.d.ts"), "utf8")).toMatch(/openVerifier/);
  });
});
