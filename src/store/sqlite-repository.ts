import type Database from "better-sqlite3";
import type { Clock } from "../clock.js";
import { toIso } from "../keys/expiration.js";
import { createAuditWriter, type AuditEntry, type AuditWriter, type Changes } from "./audit.js";
import { decodeCursor, toPage } from "./cursor.js";
import type {
  Actor,
  AuditPage,
  Denial,
  KeyPage,
  KeyPatch,
  KeyRecord,
  KeyRepository,
  ListAuditQuery,
  ListKeysQuery,
  MutationResult,
  NewKey,
  Rotation,
  RotationResult,
  StatusFilter,
} from "./repository.js";
import { SqliteAuditQuery } from "./sqlite-audit-query.js";
import { scheduleCheckpoints } from "./checkpointer.js";
import { UsageRecorder } from "./usage.js";
import { WriteBatcher } from "./write-batch.js";

/**
 * The columns of a key, read in raw mode (arrays, not objects: about a quarter cheaper per row on
 * the verification path) and turned into a `KeyRecord` by `toRecord`, in this order.
 */
const KEY_COLUMNS = `key_id, tenant_id, name, description, type, environment, prefix, created_at, updated_at,
  expires_at, revoked_at, last_used_at, usage_count, created_by, scopes, rotated_from, rotated_to`;

type KeyRow = unknown[];
/** A list row: its position (`seq`, which only the cursor needs) and then the key's columns. */
type ListRow = [number, ...unknown[]];

const STATUS_CONDITIONS: Record<StatusFilter | "default", string> = {
  default: "AND revoked_at IS NULL",
  active: "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now)",
  expired: "AND revoked_at IS NULL AND expires_at <= @now",
  revoked: "AND revoked_at IS NOT NULL",
  all: "",
};

export interface SqliteRepositoryOptions {
  /** How often counted key uses are written (default 1000 ms). */
  usageFlushMs?: number;
  /** Told when a batched usage write fails; the counts are kept and retried. */
  onUsageError?: (error: unknown) => void;
  /** Whether `close()` closes the database too (default true); false when the handle is lent. */
  closeDatabase?: boolean;
  /** Checkpoint the WAL on a timer this often (see scheduleCheckpoints). Unset: SQLite's automatic checkpoints. */
  checkpointEveryMs?: number;
}

/**
 * SQLite implementation of the repository. Statements are prepared once (list queries once per
 * filter combination); each mutation runs with its audit row in an IMMEDIATE transaction shared
 * with the other mutations of the same event-loop turn (WriteBatcher, which reruns a failed
 * batch one mutation at a time), so writers from several processes queue on the busy timeout
 * instead of failing mid-way.
 */
export class SqliteKeyRepository implements KeyRepository {
  readonly #db: Database.Database;
  readonly #clock: Clock;
  readonly #auditWriter: AuditWriter;
  readonly #auditQuery: SqliteAuditQuery;
  readonly #usage: UsageRecorder;
  readonly #writes: WriteBatcher;
  readonly #checkpoints: { stop: () => void } | undefined;
  readonly #closeDatabase: boolean;
  readonly #insertKey: Database.Statement;
  readonly #selectKey: Database.Statement<[string, string], KeyRow>;
  readonly #selectByHash: Database.Statement<[string], KeyRow>;
  readonly #updateKey: Database.Statement;
  readonly #revokeKey: Database.Statement;
  readonly #retireKey: Database.Statement;
  readonly #listStatements = new Map<string, Database.Statement<Record<string, unknown>, ListRow>>();

  constructor(db: Database.Database, clock: Clock, options: SqliteRepositoryOptions = {}) {
    this.#db = db;
    this.#clock = clock;
    this.#auditWriter = createAuditWriter(db);
    this.#auditQuery = new SqliteAuditQuery(db);
    this.#usage = new UsageRecorder(db, { intervalMs: options.usageFlushMs, onError: options.onUsageError });
    this.#closeDatabase = options.closeDatabase ?? true;
    this.#checkpoints = options.checkpointEveryMs ? scheduleCheckpoints(db, options.checkpointEveryMs) : undefined;
    this.#writes = new WriteBatcher(db, this.#auditWriter.beginTransaction);
    // Positional parameters on the hot insert: binding by name looks up every property.
    this.#insertKey = db.prepare(
      `INSERT INTO api_keys (key_id, tenant_id, name, description, type, environment, prefix, key_hash, hash_version,
         created_at, updated_at, expires_at, created_by, scopes, rotated_from)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#selectKey = db.prepare<[string, string], KeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_id = ? AND tenant_id = ?`).raw();
    this.#selectByHash = db.prepare<[string], KeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_hash = ?`).raw();
    this.#updateKey = db.prepare(
      `UPDATE api_keys SET name = @name, description = @description, expires_at = @expiresAt, scopes = @scopes,
         updated_at = @updatedAt WHERE key_id = @keyId`,
    );
    this.#revokeKey = db.prepare("UPDATE api_keys SET revoked_at = @now, updated_at = @now WHERE key_id = @keyId");
    this.#retireKey = db.prepare(
      "UPDATE api_keys SET expires_at = @expiresAt, rotated_to = @rotatedTo, updated_at = @now WHERE key_id = @keyId",
    );
  }

  async createKey(actor: Actor, key: NewKey): Promise<KeyRecord> {
    const now = this.#clock();
    return this.#writes.run(() => this.#insert(actor, key, null, now, "api_key.created"));
  }

  async getKey(tenantId: string, keyId: string): Promise<KeyRecord | undefined> {
    this.#usage.flush();
    return this.#current(tenantId, keyId);
  }

  async listKeys(tenantId: string, query: ListKeysQuery): Promise<KeyPage> {
    this.#usage.flush();
    const after = query.cursor === undefined ? undefined : decodeCursor("k", query.cursor);
    const now = this.#clock();
    const rows = this.#listStatement(query, after !== undefined).all({
      tenantId,
      after,
      environment: query.environment,
      type: query.type,
      now,
      horizon: query.expiresWithinMs === undefined ? undefined : now + query.expiresWithinMs,
      limit: query.limit + 1,
    });
    const { page, nextCursor } = toPage(rows, query.limit, "k", (row) => row[0]);
    return { keys: page.map((row) => toRecord(row, 1)), nextCursor };
  }

  async updateKey(actor: Actor, keyId: string, patch: KeyPatch): Promise<MutationResult> {
    return this.#writes.run((): MutationResult => {
      const current = this.#current(actor.tenantId, keyId);
      if (!current) return { ok: false, reason: "NOT_FOUND" };
      if (current.revokedAt !== null) return { ok: false, reason: "REVOKED" };

      const changes: Changes = {};
      if (patch.name !== undefined && patch.name !== current.name) {
        changes.name = { from: current.name, to: patch.name };
      }
      if (patch.description !== undefined && patch.description !== current.description) {
        changes.description = { from: current.description, to: patch.description };
      }
      if (patch.expiresAt !== undefined && patch.expiresAt !== current.expiresAt) {
        changes.expires_at = { from: toIso(current.expiresAt), to: toIso(patch.expiresAt) };
      }
      if (patch.scopes !== undefined && patch.scopes.join(" ") !== current.scopes.join(" ")) {
        changes.scopes = { from: current.scopes, to: patch.scopes };
      }
      if (Object.keys(changes).length === 0) return { ok: true, key: current, changed: false };

      const now = this.#clock();
      const updated: KeyRecord = {
        ...current,
        name: patch.name ?? current.name,
        description: patch.description === undefined ? current.description : patch.description,
        expiresAt: patch.expiresAt === undefined ? current.expiresAt : patch.expiresAt,
        scopes: patch.scopes ?? current.scopes,
        updatedAt: now,
      };
      this.#updateKey.run({ ...updated, scopes: JSON.stringify(updated.scopes) });
      this.#auditWriter.append({ action: "api_key.updated", outcome: "success", ...who(actor), keyId, changes }, now);
      return { ok: true, key: updated, changed: true };
    });
  }

  async revokeKey(actor: Actor, keyId: string): Promise<MutationResult> {
    return this.#writes.run((): MutationResult => {
      const current = this.#current(actor.tenantId, keyId);
      if (!current) return { ok: false, reason: "NOT_FOUND" };
      if (current.revokedAt !== null) return { ok: true, key: current, changed: false };

      const now = this.#clock();
      this.#revokeKey.run({ keyId, now });
      const changes: Changes = { revoked_at: { from: null, to: toIso(now) } };
      this.#auditWriter.append({ action: "api_key.revoked", outcome: "success", ...who(actor), keyId, changes }, now);
      return { ok: true, key: { ...current, revokedAt: now, updatedAt: now }, changed: true };
    });
  }

  async rotateKey(actor: Actor, keyId: string, rotation: Rotation): Promise<RotationResult> {
    return this.#writes.run((): RotationResult => {
      const old = this.#current(actor.tenantId, keyId);
      if (!old) return { ok: false, reason: "NOT_FOUND" };
      if (old.revokedAt !== null) return { ok: false, reason: "REVOKED" };
      if (old.rotatedTo !== null) return { ok: false, reason: "ALREADY_ROTATED", rotatedTo: old.rotatedTo };

      const now = this.#clock();
      const lifetime = old.expiresAt === null ? null : old.expiresAt - old.createdAt;
      const replacement: NewKey = {
        keyId: rotation.keyId,
        name: old.name,
        description: old.description,
        type: old.type,
        environment: old.environment,
        prefix: rotation.prefix,
        hash: rotation.hash,
        hashVersion: rotation.hashVersion,
        expiresAt: rotation.expiresAt !== undefined ? rotation.expiresAt : lifetime === null ? null : now + lifetime,
        scopes: rotation.scopes ?? old.scopes,
      };
      // The old key keeps working for the grace period, but never longer than it would have.
      const retiresAt = old.expiresAt === null ? now + rotation.graceMs : Math.min(old.expiresAt, now + rotation.graceMs);
      const key = this.#insert(actor, replacement, old.keyId, now, null);
      this.#retireKey.run({ keyId, expiresAt: retiresAt, rotatedTo: key.keyId, now });
      // One event for the rotation (V2); it also records what the new key starts with.
      const changes: Changes = {
        rotated_to: { from: null, to: key.keyId },
        expires_at: { from: toIso(old.expiresAt), to: toIso(retiresAt) },
        replacement: {
          from: null,
          to: { key_id: key.keyId, prefix: key.prefix, expires_at: toIso(key.expiresAt), scopes: key.scopes },
        },
      };
      this.#auditWriter.append({ action: "api_key.rotated", outcome: "success", ...who(actor), keyId, changes }, now);
      return { ok: true, key, previous: { ...old, expiresAt: retiresAt, rotatedTo: key.keyId, updatedAt: now } };
    });
  }

  async findKeyByHash(hash: string): Promise<KeyRecord | undefined> {
    return this.lookupByHash(hash);
  }

  /** `findKeyByHash` without the promise, for the in-process verifier's hot path (SQLite only). */
  lookupByHash(hash: string): KeyRecord | undefined {
    const row = this.#selectByHash.get(hash);
    return row && toRecord(row);
  }

  recordUsage(keyId: string, at: number): void {
    this.#usage.record(keyId, at);
  }

  async listAuditEvents(tenantId: string, query: ListAuditQuery): Promise<AuditPage> {
    return this.#auditQuery.list(tenantId, query);
  }

  async recordDenial(denial: Denial): Promise<void> {
    const entry: AuditEntry = { action: "auth.denied", outcome: "denied", ...denial };
    // Through the batch like any write: the chain needs the last hash read under the write lock.
    await this.#writes.run(() => this.#auditWriter.append(entry, this.#clock()));
  }

  /** Writes counted uses, then closes the database (unless it was lent). */
  async close(): Promise<void> {
    if (!this.#db.open) return;
    this.#writes.flush();
    this.#checkpoints?.stop();
    this.#usage.close();
    if (this.#closeDatabase) this.#db.close();
  }

  #current(tenantId: string, keyId: string): KeyRecord | undefined {
    const row = this.#selectKey.get(keyId, tenantId);
    return row && toRecord(row);
  }

  /** Inserts a key, audited as `action` unless the caller records the event itself. Inside a transaction. */
  #insert(actor: Actor, key: NewKey, rotatedFrom: string | null, now: number, action: "api_key.created" | null): KeyRecord {
    this.#insertKey.run(
      key.keyId,
      actor.tenantId,
      key.name,
      key.description,
      key.type,
      key.environment,
      key.prefix,
      key.hash,
      key.hashVersion,
      now,
      now,
      key.expiresAt,
      actor.subject,
      JSON.stringify(key.scopes),
      rotatedFrom,
    );
    if (action) {
      const changes: Changes = {
        name: { from: null, to: key.name },
        description: { from: null, to: key.description },
        type: { from: null, to: key.type },
        environment: { from: null, to: key.environment },
        prefix: { from: null, to: key.prefix },
        expires_at: { from: null, to: toIso(key.expiresAt) },
        scopes: { from: null, to: key.scopes },
      };
      this.#auditWriter.append({ action, outcome: "success", ...who(actor), keyId: key.keyId, changes }, now);
    }
    return {
      keyId: key.keyId,
      tenantId: actor.tenantId,
      name: key.name,
      description: key.description,
      type: key.type,
      environment: key.environment,
      prefix: key.prefix,
      createdAt: now,
      updatedAt: now,
      expiresAt: key.expiresAt,
      revokedAt: null,
      lastUsedAt: null,
      usageCount: 0,
      createdBy: actor.subject,
      scopes: key.scopes,
      rotatedFrom,
      rotatedTo: null,
    };
  }

  #listStatement(query: ListKeysQuery, paged: boolean): Database.Statement<Record<string, unknown>, ListRow> {
    const status = query.status ?? "default";
    const within = query.expiresWithinMs !== undefined;
    const shape = `${status}|${paged}|${query.environment !== undefined}|${query.type !== undefined}|${within}`;
    let statement = this.#listStatements.get(shape);
    if (!statement) {
      statement = this.#db.prepare<Record<string, unknown>, ListRow>(
        `SELECT seq, ${KEY_COLUMNS} FROM api_keys
         WHERE tenant_id = @tenantId ${paged ? "AND seq < @after" : ""}
           ${query.environment !== undefined ? "AND environment = @environment" : ""}
           ${query.type !== undefined ? "AND type = @type" : ""}
           ${within ? "AND expires_at > @now AND expires_at <= @horizon" : ""}
           ${STATUS_CONDITIONS[status]}
         ORDER BY seq DESC LIMIT @limit`,
      ).raw();
      this.#listStatements.set(shape, statement);
    }
    return statement;
  }
}

/** A raw key row (from `offset` on) as a `KeyRecord`. */
function toRecord(row: KeyRow, offset = 0): KeyRecord {
  const scopes = row[offset + 14] as string;
  return {
    keyId: row[offset] as string,
    tenantId: row[offset + 1] as string,
    name: row[offset + 2] as string,
    description: row[offset + 3] as string | null,
    type: row[offset + 4] as KeyRecord["type"],
    environment: row[offset + 5] as KeyRecord["environment"],
    prefix: row[offset + 6] as string,
    createdAt: row[offset + 7] as number,
    updatedAt: row[offset + 8] as number,
    expiresAt: row[offset + 9] as number | null,
    revokedAt: row[offset + 10] as number | null,
    lastUsedAt: row[offset + 11] as number | null,
    usageCount: row[offset + 12] as number,
    createdBy: row[offset + 13] as string,
    scopes: scopes === "[]" ? [] : (JSON.parse(scopes) as string[]),
    rotatedFrom: row[offset + 15] as string | null,
    rotatedTo: row[offset + 16] as string | null,
  };
}

function who(actor: Actor): { tenantId: string; actor: string } {
  return { tenantId: actor.tenantId, actor: actor.subject };
}

