import type Database from "better-sqlite3";
import { declineEntry, denialEntry, type Actor, type Decline, type Denial } from "../../audit/events.js";
import {
  IDEMPOTENCY_SWEEP_LIMIT,
  judgeRetry,
  recordClaim,
  type IdempotencyClaim,
  type IdempotencyRecord,
  type IdempotentTool,
} from "../../keys/idempotency.js";
import { planCreate, planRevoke, planRotation, planUpdate } from "../../keys/lifecycle.js";
import type { DeliveryMethod, KeyPatch, KeyRecord, NewKey, Rotation } from "../../keys/record.js";
import { createCursorCodec, type CursorCodec } from "../cursor.js";
import { KEY_COLUMNS, KEY_INSERT_COLUMNS, keyFromRow, keyInsertValues, rowSeq, type KeyRow } from "../key-row.js";
import { cutPage, keyListParams, keyPlanShape, LIST_WINDOW_ROWS, planKeyList, type KeyListPlan, type KeyWalk } from "../list-plan.js";
import type { AuditPage, Claimed, CreateResult, KeyPage, KeyRepository, ListAuditQuery, ListKeysQuery, MutationResult, RotationResult } from "../repository.js";
import { UsageBatcher, type UsageDelta } from "../usage-batcher.js";
import { SqliteAuditQuery } from "./audit-query.js";
import { createAuditWriter, type AuditWriter } from "./audit-writer.js";
import { read } from "./busy.js";
import { scheduleCheckpoints } from "./checkpointer.js";
import { WriteBatcher } from "./write-batch.js";

/**
 * A key row as one JSON array of the shared columns (src/store/key-row.ts), parsed by `parseRow`:
 * one text instead of eighteen columns. better-sqlite3 builds each column of a row through V8's
 * API, which costs more than V8's JSON parser reading the whole row (a verification, which reads
 * one row, measured 9 % fewer instructions).
 */
const KEY_SELECT = `SELECT json_array(${KEY_COLUMNS})`;
const KEY_FROM = "api_keys AS k";
const USAGE_JOIN = "LEFT JOIN key_usage AS u ON u.key_seq = k.seq";

const parseRow = (text: string): KeyRow => JSON.parse(text) as KeyRow;

interface ClaimRow {
  tenant_id: string;
  tool: IdempotentTool;
  key_hash: string;
  fingerprint: string;
  key_id: string;
  delivery: DeliveryMethod;
  created_at: number;
  expires_at: number;
}

interface ListStatements {
  /** For a windowed plan: the first entry beyond the window, when the walk has more entries than the window holds. */
  floor?: Database.Statement<Record<string, unknown>, number>;
  /** The page, bounded below by the floor (above it). */
  windowed?: Database.Statement<Record<string, unknown>, string>;
  /** The page when no floor bounds it. */
  page: Database.Statement<Record<string, unknown>, string>;
}

/** Each walk's index and the condition that selects it (a partial index needs its WHERE repeated). */
const WALKS: Record<KeyWalk, { index: string; where: string }> = {
  tenant: { index: "api_keys_by_tenant", where: "k.tenant_id = @tenantId" },
  unrevoked: { index: "api_keys_unrevoked", where: "k.tenant_id = @tenantId AND k.revoked_at IS NULL" },
  revoked: { index: "api_keys_revoked", where: "k.tenant_id = @tenantId AND k.revoked_at IS NOT NULL" },
  environment: { index: "api_keys_by_environment", where: "k.tenant_id = @tenantId AND k.environment = @environment" },
  type: { index: "api_keys_by_type", where: "k.tenant_id = @tenantId AND k.type = @type" },
};

const EXPIRY_CONDITIONS = {
  unexpired: "(k.expires_at IS NULL OR k.expires_at > @now)",
  expired: "k.expires_at <= @now",
  within: "k.expires_at > @now AND k.expires_at <= @horizon",
} as const;

export interface SqliteRepositoryOptions {
  /** How often counted key uses are written (default 1000 ms). */
  usageFlushMs?: number;
  /** Told when a batched usage write fails; the counts are kept and retried. */
  onUsageError?: (error: unknown) => void;
  /** Whether `close()` closes the database too (default true); false when the handle is lent. */
  closeDatabase?: boolean;
  /** Checkpoint the WAL on a timer this often (see scheduleCheckpoints). Unset: SQLite's automatic checkpoints. */
  checkpointEveryMs?: number;
  /** How long a write waits for another process's lock before it answers ERR_BUSY (default 5000 ms). */
  busyTimeoutMs?: number;
  /** The operator's audit key: the hash chain becomes an HMAC chain. */
  auditKey?: Uint8Array;
  /** Index entries a filtered page looks at, at most (default LIST_WINDOW_ROWS); tests lower it. */
  listWindowRows?: number;
}

/**
 * SQLite implementation of the repository. Statements are prepared once (list queries once per
 * plan shape); each mutation reads the current row, asks the lifecycle rules what to do, and
 * writes the result with its audit row in an IMMEDIATE transaction shared with the other
 * mutations of the same event-loop turn (WriteBatcher).
 */
export class SqliteKeyRepository implements KeyRepository {
  readonly #db: Database.Database;
  readonly #auditWriter: AuditWriter;
  readonly #auditQuery: SqliteAuditQuery;
  readonly #usage: UsageBatcher<number>;
  readonly #writes: WriteBatcher;
  readonly #cursors: CursorCodec;
  readonly #checkpoints: { stop: () => void } | undefined;
  readonly #closeDatabase: boolean;
  readonly #windowRows: number;
  /** The row id of each record `findKeyByHash` returned, so a use is counted without another lookup. */
  readonly #seqs = new WeakMap<KeyRecord, number>();
  readonly #insertKey: Database.Statement;
  readonly #selectKey: Database.Statement<[string, string], string>;
  readonly #selectByHash: Database.Statement<[string], string>;
  readonly #selectSeq: Database.Statement<[string], number>;
  readonly #updateKey: Database.Statement;
  readonly #revokeKey: Database.Statement;
  readonly #retireKey: Database.Statement;
  readonly #selectClaim: Database.Statement<[string, string, string], ClaimRow>;
  readonly #upsertClaim: Database.Statement;
  readonly #sweepClaims: Database.Statement<[number, number]>;
  readonly #listStatements = new Map<string, ListStatements>();
  #closed = false;

  constructor(db: Database.Database, options: SqliteRepositoryOptions = {}) {
    this.#db = db;
    this.#auditWriter = createAuditWriter(db, options.auditKey);
    this.#cursors = createCursorCodec(db.prepare("SELECT value FROM store_meta WHERE name = 'cursor_key'").pluck().get() as Buffer);
    this.#windowRows = options.listWindowRows ?? LIST_WINDOW_ROWS;
    this.#auditQuery = new SqliteAuditQuery(db, this.#cursors, this.#windowRows);
    this.#closeDatabase = options.closeDatabase ?? true;
    this.#checkpoints = options.checkpointEveryMs ? scheduleCheckpoints(db, options.checkpointEveryMs) : undefined;
    this.#writes = new WriteBatcher(db, { onBegin: this.#auditWriter.beginTransaction, busyTimeoutMs: options.busyTimeoutMs });
    // Counts go to their own narrow table in row-id order, adding to what is there.
    const upsertUsage = db.prepare(
      `INSERT INTO key_usage (key_seq, usage_count, last_used_at) VALUES (?, ?, ?)
       ON CONFLICT (key_seq) DO UPDATE SET usage_count = usage_count + excluded.usage_count,
         last_used_at = MAX(COALESCE(last_used_at, 0), excluded.last_used_at)`,
    );
    const writeUsage = db.transaction((batch: Map<number, UsageDelta>) => {
      for (const [seq, { count, lastUsedAt }] of batch) upsertUsage.run(seq, count, lastUsedAt);
    });
    this.#usage = new UsageBatcher<number>((batch) => writeUsage.immediate(batch), { intervalMs: options.usageFlushMs, onError: options.onUsageError });
    // Positional parameters on the hot insert: binding by name looks up every property.
    this.#insertKey = db.prepare(
      `INSERT INTO api_keys (${KEY_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#selectKey = db.prepare<[string, string], string>(`${KEY_SELECT} FROM ${KEY_FROM} ${USAGE_JOIN} WHERE k.key_id = ? AND k.tenant_id = ?`).pluck();
    this.#selectByHash = db.prepare<[string], string>(`${KEY_SELECT} FROM ${KEY_FROM} ${USAGE_JOIN} WHERE k.key_hash = ?`).pluck();
    this.#selectSeq = db.prepare<[string], number>("SELECT seq FROM api_keys WHERE key_id = ?").pluck();
    this.#updateKey = db.prepare(
      "UPDATE api_keys SET name = ?, description = ?, expires_at = ?, scopes = ?, updated_at = ? WHERE key_id = ?",
    );
    this.#revokeKey = db.prepare("UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE key_id = ?");
    this.#retireKey = db.prepare("UPDATE api_keys SET expires_at = ?, rotated_to = ?, updated_at = ? WHERE key_id = ?");
    this.#selectClaim = db.prepare<[string, string, string], ClaimRow>(
      `SELECT tenant_id, tool, key_hash, fingerprint, key_id, delivery, created_at, expires_at
       FROM idempotency_keys WHERE tenant_id = ? AND tool = ? AND key_hash = ?`,
    );
    // A fresh claim may meet the expired record of the same key: it takes its place.
    this.#upsertClaim = db.prepare(
      `INSERT INTO idempotency_keys (tenant_id, tool, key_hash, fingerprint, key_id, delivery, created_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant_id, tool, key_hash) DO UPDATE SET fingerprint = excluded.fingerprint, key_id = excluded.key_id,
         delivery = excluded.delivery, created_at = excluded.created_at, expires_at = excluded.expires_at`,
    );
    this.#sweepClaims = db.prepare<[number, number]>(
      `DELETE FROM idempotency_keys WHERE (tenant_id, tool, key_hash) IN
         (SELECT tenant_id, tool, key_hash FROM idempotency_keys WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`,
    );
  }

  async createKey(actor: Actor, key: NewKey, now: number, idempotency?: IdempotencyClaim): Promise<CreateResult> {
    return this.#writes.run((): CreateResult => {
      const claimed = idempotency && this.#claimed(actor.tenantId, idempotency, now);
      if (claimed) return claimed;
      const { record, audit } = planCreate(actor, key, now);
      this.#insert(record, key);
      this.#auditWriter.append(audit, now);
      this.#afterKeyWrite(actor.tenantId, idempotency, record.keyId, now);
      return { ok: true, key: record };
    });
  }

  async getKey(tenantId: string, keyId: string): Promise<KeyRecord | undefined> {
    return read(() => this.#current(tenantId, keyId));
  }

  async listKeys(tenantId: string, query: ListKeysQuery): Promise<KeyPage> {
    const after = query.cursor === undefined ? undefined : this.#cursors.decode("k", tenantId, query.cursor)[0];
    const plan = planKeyList(query);
    const statements = this.#listStatement(plan, after !== undefined);
    const params = keyListParams(tenantId, query, after, this.#windowRows);
    return read(() => {
      const floor = statements.floor?.get(params);
      const rows = (floor === undefined ? statements.page.all(params) : statements.windowed!.all({ ...params, floor })).map(parseRow);
      const cut = cutPage(rows, query.limit, (row) => [rowSeq(row)], floor === undefined ? undefined : [floor + 1]);
      return {
        keys: cut.rows.map((row) => this.#toRecord(row)),
        nextCursor: cut.next === undefined ? null : this.#cursors.encode("k", tenantId, cut.next),
      };
    });
  }

  async updateKey(actor: Actor, keyId: string, patch: KeyPatch, now: number): Promise<MutationResult> {
    return this.#writes.run((): MutationResult => {
      const plan = planUpdate(actor, this.#current(actor.tenantId, keyId), patch, now);
      if (!plan.ok) return plan as MutationResult;
      if (!plan.changed) return { ok: true, key: plan.key, changed: false };
      const { key } = plan;
      this.#updateKey.run(key.name, key.description, key.expiresAt, JSON.stringify(key.scopes), now, keyId);
      this.#auditWriter.append(plan.audit, now);
      return { ok: true, key, changed: true };
    });
  }

  async revokeKey(actor: Actor, keyId: string, now: number): Promise<MutationResult> {
    return this.#writes.run((): MutationResult => {
      const plan = planRevoke(actor, this.#current(actor.tenantId, keyId), now);
      if (!plan.ok) return plan;
      if (!plan.changed) return { ok: true, key: plan.key, changed: false };
      this.#revokeKey.run(now, now, keyId);
      this.#auditWriter.append(plan.audit, now);
      return { ok: true, key: plan.key, changed: true };
    });
  }

  async rotateKey(actor: Actor, keyId: string, rotation: Rotation, now: number, idempotency?: IdempotencyClaim): Promise<RotationResult> {
    return this.#writes.run((): RotationResult => {
      const claimed = idempotency && this.#claimed(actor.tenantId, idempotency, now);
      if (claimed) return claimed;
      const plan = planRotation(actor, this.#current(actor.tenantId, keyId), rotation, now);
      if (!plan.ok) return plan as RotationResult;
      this.#insert(plan.key, plan.replacement);
      this.#retireKey.run(plan.previous.expiresAt, plan.key.keyId, now, keyId);
      this.#auditWriter.append(plan.audit, now);
      this.#afterKeyWrite(actor.tenantId, idempotency, plan.key.keyId, now);
      return { ok: true, key: plan.key, previous: plan.previous };
    });
  }

  async findIdempotencyRecord(tenantId: string, tool: IdempotentTool, keyHash: string): Promise<IdempotencyRecord | undefined> {
    return read(() => this.#claimRecord(tenantId, tool, keyHash));
  }

  async findKeyByHash(hash: string): Promise<KeyRecord | undefined> {
    return read(() => this.lookupByHash(hash));
  }

  /** `findKeyByHash` without the promise, for the in-process verifier's hot path. */
  lookupByHash(hash: string): KeyRecord | undefined {
    const text = this.#selectByHash.get(hash);
    if (text === undefined) return undefined;
    const row = parseRow(text);
    const record = this.#toRecord(row);
    this.#seqs.set(record, rowSeq(row));
    return record;
  }

  recordUsage(key: KeyRecord, at: number): void {
    const seq = this.#seqs.get(key) ?? read(() => this.#selectSeq.get(key.keyId));
    if (seq !== undefined) this.#usage.record(seq, at);
  }

  flushUsage(): Promise<void> {
    return this.#usage.flush();
  }

  async listAuditEvents(tenantId: string, query: ListAuditQuery): Promise<AuditPage> {
    return read(() => this.#auditQuery.list(tenantId, query));
  }

  async recordDenial(denial: Denial): Promise<void> {
    // Through the batch like any write: the chain needs the last hash read under the write lock.
    await this.#writes.run(() => this.#auditWriter.append(denialEntry(denial), denial.at));
  }

  async recordDecline(decline: Decline): Promise<void> {
    await this.#writes.run(() => this.#auditWriter.append(declineEntry(decline), decline.at));
  }

  /** Writes queued changes and counted uses, then closes the database (unless it was lent). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes.drain();
    this.#checkpoints?.stop();
    await this.#usage.close();
    if (this.#closeDatabase && this.#db.open) this.#db.close();
  }

  /** The stored record a claim meets, when it is not fresh (see judgeRetry). Inside the write's transaction. */
  #claimed(tenantId: string, claim: IdempotencyClaim, now: number): Claimed | undefined {
    const verdict = judgeRetry(this.#claimRecord(tenantId, claim.tool, claim.keyHash), claim, now);
    return verdict.kind === "fresh" ? undefined : { ok: false, reason: "CLAIMED", record: verdict.record };
  }

  /** Records a fresh claim with the key it made, and deletes a bounded number of expired ones. */
  #afterKeyWrite(tenantId: string, claim: IdempotencyClaim | undefined, keyId: string, now: number): void {
    if (claim) {
      const record = recordClaim(tenantId, claim, keyId, now);
      this.#upsertClaim.run(
        record.tenantId,
        record.tool,
        record.keyHash,
        record.fingerprint,
        record.keyId,
        record.delivery,
        record.createdAt,
        record.expiresAt,
      );
    }
    this.#sweepClaims.run(now, IDEMPOTENCY_SWEEP_LIMIT);
  }

  #claimRecord(tenantId: string, tool: IdempotentTool, keyHash: string): IdempotencyRecord | undefined {
    const row = this.#selectClaim.get(tenantId, tool, keyHash);
    if (!row) return undefined;
    return {
      tenantId: row.tenant_id,
      tool: row.tool,
      keyHash: row.key_hash,
      fingerprint: row.fingerprint,
      keyId: row.key_id,
      delivery: row.delivery,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
    };
  }

  #current(tenantId: string, keyId: string): KeyRecord | undefined {
    const text = this.#selectKey.get(keyId, tenantId);
    return text === undefined ? undefined : this.#toRecord(parseRow(text));
  }

  #insert(record: KeyRecord, key: NewKey): void {
    this.#insertKey.run(...keyInsertValues(record, key));
  }


  /** A raw key row as a `KeyRecord`, with the uses this process counted and has not yet written. */
  #toRecord(row: KeyRow): KeyRecord {
    return keyFromRow(row, this.#usage.pending(rowSeq(row)));
  }

  #listStatement(plan: KeyListPlan, paged: boolean) {
    const shape = keyPlanShape(plan, paged);
    let statements = this.#listStatements.get(shape);
    if (!statements) {
      const walk = WALKS[plan.walk];
      const residual = plan.residual;
      const conditions = [
        walk.where,
        paged ? "k.seq < @after" : "",
        residual.revoked === undefined ? "" : residual.revoked ? "k.revoked_at IS NOT NULL" : "k.revoked_at IS NULL",
        residual.environment === undefined ? "" : "k.environment = @environment",
        residual.type === undefined ? "" : "k.type = @type",
        ...residual.expiry.map((condition) => EXPIRY_CONDITIONS[condition]),
      ].filter(Boolean);
      const walked = `${KEY_FROM} INDEXED BY ${walk.index}`;
      const page = (bounded: boolean) =>
        this.#db
          .prepare<Record<string, unknown>, string>(
            `${KEY_SELECT} FROM ${walked} ${USAGE_JOIN}
             WHERE ${[...conditions, ...(bounded ? ["k.seq > @floor"] : [])].join(" AND ")}
             ORDER BY k.seq DESC LIMIT @limit`,
          )
          .pluck();
      statements = { page: page(false) };
      if (plan.windowed) {
        // The first row id beyond the next `windowRows` entries of the walked index: the page
        // looks no further. Only the index is read.
        statements.floor = this.#db
          .prepare<Record<string, unknown>, number>(
            `SELECT k.seq FROM ${walked} WHERE ${walk.where} ${paged ? "AND k.seq < @after" : ""} ORDER BY k.seq DESC LIMIT 1 OFFSET @skip`,
          )
          .pluck();
        statements.windowed = page(true);
      }
      this.#listStatements.set(shape, statements);
    }
    return statements;
  }
}
