import { createHash } from "node:crypto";
import type pg from "pg";
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
import type { KeyPatch, KeyRecord, NewKey, Rotation } from "../../keys/record.js";
import { createCursorCodec, type CursorCodec } from "../cursor.js";
import { KEY_FROM_WITH_USAGE, KEY_INSERT_COLUMNS, KEY_SELECT, keyFromRow, keyInsertValues, rowSeq, type KeyRow } from "../key-row.js";
import { cutPage, keyListParams, keyPlanShape, LIST_WINDOW_ROWS, planKeyList, type KeyListPlan, type KeyWalk } from "../list-plan.js";
import type { AuditPage, Claimed, CreateResult, KeyPage, KeyRepository, ListAuditQuery, ListKeysQuery, MutationResult, RotationResult } from "../repository.js";
import { UsageBatcher, type UsageDelta } from "../usage-batcher.js";
import { appendAudit, PostgresAuditQuery } from "./audit.js";
import { migratePostgres } from "./migrate.js";
import { DEFAULT_BUSY_TIMEOUT_MS, inTransaction, isTransient, openProblem, readWithRetry, storeUnavailable } from "./pool.js";
import { compile, type Compiled } from "./sql.js";

const WALKS: Record<KeyWalk, string> = {
  tenant: "k.tenant_id = @tenantId",
  unrevoked: "k.tenant_id = @tenantId AND k.revoked_at IS NULL",
  revoked: "k.tenant_id = @tenantId AND k.revoked_at IS NOT NULL",
  environment: "k.tenant_id = @tenantId AND k.environment = @environment",
  type: "k.tenant_id = @tenantId AND k.type = @type",
};

const EXPIRY_CONDITIONS = {
  unexpired: "(k.expires_at IS NULL OR k.expires_at > @now)",
  expired: "k.expires_at <= @now",
  within: "k.expires_at > @now AND k.expires_at <= @horizon",
} as const;

const SELECT_KEY = `${KEY_SELECT} FROM ${KEY_FROM_WITH_USAGE} WHERE k.key_id = $1 AND k.tenant_id = $2`;

const SELECT_CLAIM = `SELECT tenant_id AS "tenantId", tool, key_hash AS "keyHash", fingerprint, key_id AS "keyId", delivery,
  created_at AS "createdAt", expires_at AS "expiresAt" FROM idempotency_keys WHERE tenant_id = $1 AND tool = $2 AND key_hash = $3`;

/** The advisory lock space of idempotency claims (the two-key form, apart from the migration lock's). */
const CLAIM_LOCK_SPACE = 0x69646d70; // "idmp"

export interface PostgresRepositoryOptions {
  /** How often counted key uses are written (default 1000 ms). */
  usageFlushMs?: number;
  /** Told when a batched usage write fails; the counts are kept and retried. */
  onUsageError?: (error: unknown) => void;
  /** Whether `close()` ends the pool too (default true). */
  closePool?: boolean;
  /** How long a call retries a transient failure (a lost connection, a deadlock) before ERR_BUSY (default 5000 ms). */
  busyTimeoutMs?: number;
  /** The operator's audit key: the hash chain becomes an HMAC chain. */
  auditKey?: Uint8Array;
  /** Index entries a filtered page looks at, at most (default LIST_WINDOW_ROWS). */
  listWindowRows?: number;
}

interface ListStatements {
  floor?: Compiled;
  windowed?: Compiled;
  page: Compiled;
}

/**
 * The PostgreSQL implementation of the repository, for several instances sharing one key store.
 * Each mutation is one transaction on a pooled connection: the key row is read `FOR UPDATE`,
 * the lifecycle rules decide, the result and its audit row are written, the chain's head row is
 * locked last (so appends from every instance form one line) and the transaction commits. A
 * transient failure (a lost connection, a serialization failure, a deadlock) reruns it from the
 * start, within the busy timeout; past it, ERR_BUSY. The schema is brought up to date on first
 * use, under an advisory lock; until PostgreSQL answers, calls answer ERR_BUSY and the next call
 * tries again, so a server started before its database recovers by itself.
 */
export class PostgresKeyRepository implements KeyRepository {
  readonly #pool: pg.Pool;
  readonly #options: PostgresRepositoryOptions;
  readonly #busyTimeoutMs: number;
  readonly #windowRows: number;
  readonly #usage: UsageBatcher<number>;
  readonly #auditQuery: PostgresAuditQuery;
  readonly #seqs = new WeakMap<KeyRecord, number>();
  readonly #listStatements = new Map<string, ListStatements>();
  #cursors: CursorCodec | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;

  constructor(pool: pg.Pool, options: PostgresRepositoryOptions = {}) {
    this.#pool = pool;
    this.#options = options;
    this.#busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    this.#windowRows = options.listWindowRows ?? LIST_WINDOW_ROWS;
    this.#auditQuery = new PostgresAuditQuery(pool, () => this.#cursors!, this.#windowRows);
    // Counts are added to what is there, in row-id order: two instances upserting overlapping
    // keys take their row locks in the same order and cannot deadlock.
    this.#usage = new UsageBatcher<number>((batch) => this.#writeUsage(batch), { intervalMs: options.usageFlushMs, onError: options.onUsageError });
  }

  /**
   * Migrates the schema and loads the cursor key, once; a failure is not remembered, so the next
   * call tries again. Resolves when the store can serve.
   */
  ready(): Promise<void> {
    this.#ready ??= (async () => {
      await migratePostgres(this.#pool);
      const { rows } = await this.#pool.query<{ value: Buffer }>("SELECT value FROM store_meta WHERE name = 'cursor_key'");
      this.#cursors = createCursorCodec(rows[0]!.value);
    })().catch((error: unknown) => {
      this.#ready = undefined;
      throw isTransient(error) ? storeUnavailable(error) : (openProblem(error) ?? error);
    });
    return this.#ready;
  }

  async createKey(actor: Actor, key: NewKey, now: number, idempotency?: IdempotencyClaim): Promise<CreateResult> {
    return this.#write(async (client): Promise<CreateResult> => {
      const claimed = idempotency && (await this.#claimed(client, actor.tenantId, idempotency, now));
      if (claimed) return claimed;
      const { record, audit } = planCreate(actor, key, now);
      await this.#insert(client, record, key);
      await this.#afterKeyWrite(client, actor.tenantId, idempotency, record.keyId, now);
      await appendAudit(client, audit, now, this.#options.auditKey);
      return { ok: true, key: record };
    });
  }

  async getKey(tenantId: string, keyId: string): Promise<KeyRecord | undefined> {
    await this.ready();
    const { rows } = await readWithRetry(this.#pool, () => this.#pool.query<KeyRow>({ name: "key_get", text: SELECT_KEY, values: [keyId, tenantId], rowMode: "array" }), this.#busyTimeoutMs);
    return rows[0] && this.#toRecord(rows[0]);
  }

  async listKeys(tenantId: string, query: ListKeysQuery): Promise<KeyPage> {
    await this.ready();
    const cursors = this.#cursors!;
    const after = query.cursor === undefined ? undefined : cursors.decode("k", tenantId, query.cursor)[0];
    const plan = planKeyList(query);
    const statements = this.#listStatement(plan, after !== undefined);
    const params = keyListParams(tenantId, query, after, this.#windowRows);
    return readWithRetry(
      this.#pool,
      async () => {
        let floor: number | undefined;
        if (statements.floor) floor = (await this.#pool.query<[number]>({ ...statements.floor.query(params), rowMode: "array" })).rows[0]?.[0];
        const page = floor === undefined ? statements.page : statements.windowed!;
        const rows = (await this.#pool.query<KeyRow>({ ...page.query({ ...params, floor }), rowMode: "array" })).rows;
        const cut = cutPage(rows, query.limit, (row) => [rowSeq(row)], floor === undefined ? undefined : [floor + 1]);
        return { keys: cut.rows.map((row) => this.#toRecord(row)), nextCursor: cut.next === undefined ? null : cursors.encode("k", tenantId, cut.next) };
      },
      this.#busyTimeoutMs,
    );
  }

  async updateKey(actor: Actor, keyId: string, patch: KeyPatch, now: number): Promise<MutationResult> {
    return this.#write(async (client): Promise<MutationResult> => {
      const plan = planUpdate(actor, await this.#lockKey(client, actor.tenantId, keyId), patch, now);
      if (!plan.ok) return plan as MutationResult;
      if (!plan.changed) return { ok: true, key: plan.key, changed: false };
      const { key } = plan;
      await client.query({
        name: "key_update",
        text: "UPDATE api_keys SET name = $1, description = $2, expires_at = $3, scopes = $4, updated_at = $5 WHERE key_id = $6",
        values: [key.name, key.description, key.expiresAt, JSON.stringify(key.scopes), now, keyId],
      });
      await appendAudit(client, plan.audit, now, this.#options.auditKey);
      return { ok: true, key, changed: true };
    });
  }

  async revokeKey(actor: Actor, keyId: string, now: number): Promise<MutationResult> {
    return this.#write(async (client): Promise<MutationResult> => {
      const plan = planRevoke(actor, await this.#lockKey(client, actor.tenantId, keyId), now);
      if (!plan.ok) return plan;
      if (!plan.changed) return { ok: true, key: plan.key, changed: false };
      await client.query({ name: "key_revoke", text: "UPDATE api_keys SET revoked_at = $1, updated_at = $1 WHERE key_id = $2", values: [now, keyId] });
      await appendAudit(client, plan.audit, now, this.#options.auditKey);
      return { ok: true, key: plan.key, changed: true };
    });
  }

  async rotateKey(actor: Actor, keyId: string, rotation: Rotation, now: number, idempotency?: IdempotencyClaim): Promise<RotationResult> {
    return this.#write(async (client): Promise<RotationResult> => {
      const claimed = idempotency && (await this.#claimed(client, actor.tenantId, idempotency, now));
      if (claimed) return claimed;
      const plan = planRotation(actor, await this.#lockKey(client, actor.tenantId, keyId), rotation, now);
      if (!plan.ok) return plan as RotationResult;
      await this.#insert(client, plan.key, plan.replacement);
      await client.query({
        name: "key_retire",
        text: "UPDATE api_keys SET expires_at = $1, rotated_to = $2, updated_at = $3 WHERE key_id = $4",
        values: [plan.previous.expiresAt, plan.key.keyId, now, keyId],
      });
      await this.#afterKeyWrite(client, actor.tenantId, idempotency, plan.key.keyId, now);
      await appendAudit(client, plan.audit, now, this.#options.auditKey);
      return { ok: true, key: plan.key, previous: plan.previous };
    });
  }

  async findIdempotencyRecord(tenantId: string, tool: IdempotentTool, keyHash: string): Promise<IdempotencyRecord | undefined> {
    await this.ready();
    const { rows } = await readWithRetry(
      this.#pool,
      () => this.#pool.query<IdempotencyRecord>({ name: "claim_get", text: SELECT_CLAIM, values: [tenantId, tool, keyHash] }),
      this.#busyTimeoutMs,
    );
    return rows[0];
  }

  async findKeyByHash(hash: string): Promise<KeyRecord | undefined> {
    await this.ready();
    const { rows } = await readWithRetry(
      this.#pool,
      () => this.#pool.query<KeyRow>({ name: "key_by_hash", text: `${KEY_SELECT} FROM ${KEY_FROM_WITH_USAGE} WHERE k.key_hash = $1`, values: [hash], rowMode: "array" }),
      this.#busyTimeoutMs,
    );
    const row = rows[0];
    if (!row) return undefined;
    const record = this.#toRecord(row);
    this.#seqs.set(record, rowSeq(row));
    return record;
  }

  recordUsage(key: KeyRecord, at: number): void {
    const seq = this.#seqs.get(key);
    if (seq !== undefined) {
      this.#usage.record(seq, at);
      return;
    }
    // A record this repository did not just look up by hash: find its row id first.
    void this.#pool
      .query<[number]>({ name: "key_seq", text: "SELECT seq FROM api_keys WHERE key_id = $1", values: [key.keyId], rowMode: "array" })
      .then(({ rows }) => rows[0] && this.#usage.record(rows[0][0], at))
      .catch((error: unknown) => this.#options.onUsageError?.(error));
  }

  flushUsage(): Promise<void> {
    return this.#usage.flush();
  }

  async listAuditEvents(tenantId: string, query: ListAuditQuery): Promise<AuditPage> {
    await this.ready();
    return readWithRetry(this.#pool, () => this.#auditQuery.list(tenantId, query), this.#busyTimeoutMs);
  }

  async recordDenial(denial: Denial): Promise<void> {
    await this.#write((client) => appendAudit(client, denialEntry(denial), denial.at, this.#options.auditKey));
  }

  async recordDecline(decline: Decline): Promise<void> {
    await this.#write((client) => appendAudit(client, declineEntry(decline), decline.at, this.#options.auditKey));
  }

  /** Writes counted uses, then ends the pool (unless it was lent). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#usage.close();
    if (this.#options.closePool ?? true) await this.#pool.end();
  }

  async #write<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    await this.ready();
    return inTransaction(this.#pool, work, this.#busyTimeoutMs);
  }

  /**
   * The stored record a claim meets, when it is not fresh (see judgeRetry). Calls with the same
   * claim, on any instance, wait for each other here (a transaction-level advisory lock on the
   * claim), so two of them never both find it fresh and make two keys.
   */
  async #claimed(client: pg.PoolClient, tenantId: string, claim: IdempotencyClaim, now: number): Promise<Claimed | undefined> {
    // Two claims that share the lock's 32 bits only wait for each other a moment: harmless.
    const lock = createHash("sha256").update(`${tenantId}\u0000${claim.tool}\u0000${claim.keyHash}`).digest().readInt32BE(0);
    await client.query({ name: "claim_lock", text: "SELECT pg_advisory_xact_lock($1, $2)", values: [CLAIM_LOCK_SPACE, lock] });
    const { rows } = await client.query<IdempotencyRecord>({ name: "claim_get", text: SELECT_CLAIM, values: [tenantId, claim.tool, claim.keyHash] });
    const verdict = judgeRetry(rows[0], claim, now);
    return verdict.kind === "fresh" ? undefined : { ok: false, reason: "CLAIMED", record: verdict.record };
  }

  /** Records a fresh claim with the key it made, and deletes a bounded number of expired ones (skipping any another write holds). */
  async #afterKeyWrite(client: pg.PoolClient, tenantId: string, claim: IdempotencyClaim | undefined, keyId: string, now: number): Promise<void> {
    if (claim) {
      const record = recordClaim(tenantId, claim, keyId, now);
      await client.query({
        name: "claim_upsert",
        text: `INSERT INTO idempotency_keys (tenant_id, tool, key_hash, fingerprint, key_id, delivery, created_at, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (tenant_id, tool, key_hash) DO UPDATE SET fingerprint = excluded.fingerprint, key_id = excluded.key_id,
                 delivery = excluded.delivery, created_at = excluded.created_at, expires_at = excluded.expires_at`,
        values: [record.tenantId, record.tool, record.keyHash, record.fingerprint, record.keyId, record.delivery, record.createdAt, record.expiresAt],
      });
    }
    await client.query({
      name: "claim_sweep",
      text: `DELETE FROM idempotency_keys WHERE (tenant_id, tool, key_hash) IN
               (SELECT tenant_id, tool, key_hash FROM idempotency_keys WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      values: [now, IDEMPOTENCY_SWEEP_LIMIT],
    });
  }

  /** The caller's key, locked until the transaction ends; another tenant's key is not found. */
  async #lockKey(client: pg.PoolClient, tenantId: string, keyId: string): Promise<KeyRecord | undefined> {
    const { rows } = await client.query<KeyRow>({ name: "key_lock", text: `${SELECT_KEY} FOR UPDATE OF k`, values: [keyId, tenantId], rowMode: "array" });
    return rows[0] && this.#toRecord(rows[0]);
  }

  async #insert(client: pg.PoolClient, record: KeyRecord, key: NewKey): Promise<void> {
    await client.query({
      name: "key_insert",
      text: `INSERT INTO api_keys (${KEY_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
      values: keyInsertValues(record, key),
    });
  }


  /** A slice of counts, in ascending row-id order (as every instance writes them: no deadlock). */
  async #writeUsage(batch: Map<number, UsageDelta>): Promise<void> {
    const seqs = [...batch.keys()];
    await this.#pool.query({
      name: "usage_add",
      text: `INSERT INTO key_usage (key_seq, usage_count, last_used_at)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])
             ON CONFLICT (key_seq) DO UPDATE SET usage_count = key_usage.usage_count + excluded.usage_count,
               last_used_at = GREATEST(key_usage.last_used_at, excluded.last_used_at)`,
      values: [seqs, seqs.map((seq) => batch.get(seq)!.count), seqs.map((seq) => batch.get(seq)!.lastUsedAt)],
    });
  }

  #toRecord(row: KeyRow): KeyRecord {
    return keyFromRow(row, this.#usage.pending(rowSeq(row)));
  }

  #listStatement(plan: KeyListPlan, paged: boolean): ListStatements {
    const shape = keyPlanShape(plan, paged);
    let statements = this.#listStatements.get(shape);
    if (!statements) {
      const walk = WALKS[plan.walk];
      const residual = plan.residual;
      const conditions = [
        walk,
        paged ? "k.seq < @after" : "",
        residual.revoked === undefined ? "" : residual.revoked ? "k.revoked_at IS NOT NULL" : "k.revoked_at IS NULL",
        residual.environment === undefined ? "" : "k.environment = @environment",
        residual.type === undefined ? "" : "k.type = @type",
        ...residual.expiry.map((condition) => EXPIRY_CONDITIONS[condition]),
      ].filter(Boolean);
      const page = (bounded: boolean) =>
        compile(
          bounded ? "keys_windowed" : "keys_page",
          `${KEY_SELECT} FROM ${KEY_FROM_WITH_USAGE}
           WHERE ${[...conditions, ...(bounded ? ["k.seq > @floor"] : [])].join(" AND ")}
           ORDER BY k.seq DESC LIMIT @limit`,
        );
      statements = { page: page(false) };
      if (plan.windowed) {
        statements.floor = compile("keys_floor", `SELECT k.seq FROM api_keys AS k WHERE ${walk} ${paged ? "AND k.seq < @after" : ""} ORDER BY k.seq DESC LIMIT 1 OFFSET @skip`);
        statements.windowed = page(true);
      }
      this.#listStatements.set(shape, statements);
    }
    return statements;
  }
}

