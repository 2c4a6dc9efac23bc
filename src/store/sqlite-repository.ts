import type Database from "better-sqlite3";
import type { Clock } from "../clock.js";
import { toIso } from "../keys/expiration.js";
import { createAuditWriter, type AuditEntry, type Changes } from "./audit.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import type {
  Actor,
  Denial,
  KeyPage,
  KeyPatch,
  KeyRecord,
  KeyRepository,
  ListKeysQuery,
  MutationResult,
  NewKey,
  StatusFilter,
} from "./repository.js";

/** Columns aliased to `KeyRecord` names, so rows come out in the record's shape. */
const KEY_COLUMNS = `key_id AS keyId, tenant_id AS tenantId, name, description, type, environment, prefix,
  created_at AS createdAt, updated_at AS updatedAt, expires_at AS expiresAt, revoked_at AS revokedAt,
  last_used_at AS lastUsedAt, usage_count AS usageCount, created_by AS createdBy`;

/** A list row: the record plus its position, which only the cursor needs. */
type ListRow = KeyRecord & { seq: number };

const STATUS_CONDITIONS: Record<StatusFilter | "default", string> = {
  default: "AND revoked_at IS NULL",
  active: "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now)",
  expired: "AND revoked_at IS NULL AND expires_at <= @now",
  revoked: "AND revoked_at IS NOT NULL",
  all: "",
};

/**
 * SQLite implementation of the repository. Statements are prepared once (list queries once per
 * filter combination); each mutation is one IMMEDIATE transaction holding its audit row, so
 * writers from several processes queue on the busy timeout instead of failing mid-way.
 */
export class SqliteKeyRepository implements KeyRepository {
  readonly #db: Database.Database;
  readonly #clock: Clock;
  readonly #audit: (entry: AuditEntry, occurredAt: number) => void;
  readonly #insertKey: Database.Statement;
  readonly #selectKey: Database.Statement<[string, string], KeyRecord>;
  readonly #updateKey: Database.Statement;
  readonly #revokeKey: Database.Statement;
  readonly #listStatements = new Map<string, Database.Statement<Record<string, unknown>, ListRow>>();

  constructor(db: Database.Database, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
    this.#audit = createAuditWriter(db);
    this.#insertKey = db.prepare(
      `INSERT INTO api_keys (key_id, tenant_id, name, description, type, environment, prefix, key_hash, hash_version,
         created_at, updated_at, expires_at, created_by)
       VALUES (@keyId, @tenantId, @name, @description, @type, @environment, @prefix, @hash, @hashVersion,
         @now, @now, @expiresAt, @createdBy)`,
    );
    this.#selectKey = db.prepare(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_id = ? AND tenant_id = ?`);
    this.#updateKey = db.prepare(
      "UPDATE api_keys SET name = @name, description = @description, expires_at = @expiresAt, updated_at = @updatedAt WHERE key_id = @keyId",
    );
    this.#revokeKey = db.prepare("UPDATE api_keys SET revoked_at = @now, updated_at = @now WHERE key_id = @keyId");
  }

  async createKey(actor: Actor, key: NewKey): Promise<KeyRecord> {
    const now = this.#clock();
    const record: KeyRecord = {
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
    };
    const changes: Changes = {
      name: { from: null, to: key.name },
      description: { from: null, to: key.description },
      type: { from: null, to: key.type },
      environment: { from: null, to: key.environment },
      prefix: { from: null, to: key.prefix },
      expires_at: { from: null, to: toIso(key.expiresAt) },
    };
    this.#db
      .transaction(() => {
        this.#insertKey.run({ ...key, tenantId: actor.tenantId, createdBy: actor.subject, now });
        this.#audit({ action: "api_key.created", outcome: "success", ...this.#who(actor), keyId: key.keyId, changes }, now);
      })
      .immediate();
    return record;
  }

  async getKey(tenantId: string, keyId: string): Promise<KeyRecord | undefined> {
    return this.#selectKey.get(keyId, tenantId);
  }

  async listKeys(tenantId: string, query: ListKeysQuery): Promise<KeyPage> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const rows = this.#listStatement(query, after !== undefined).all({
      tenantId,
      after,
      environment: query.environment,
      type: query.type,
      now: this.#clock(),
      limit: query.limit + 1,
    });
    const hasMore = rows.length > query.limit;
    const page = hasMore ? rows.slice(0, query.limit) : rows;
    return {
      keys: page.map(({ seq: _position, ...record }) => record),
      nextCursor: hasMore ? encodeCursor(page[page.length - 1]!.seq) : null,
    };
  }

  async updateKey(actor: Actor, keyId: string, patch: KeyPatch): Promise<MutationResult> {
    return this.#db
      .transaction((): MutationResult => {
        const current = this.#selectKey.get(keyId, actor.tenantId);
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
        if (Object.keys(changes).length === 0) return { ok: true, key: current, changed: false };

        const now = this.#clock();
        const updated: KeyRecord = {
          ...current,
          name: patch.name ?? current.name,
          description: patch.description === undefined ? current.description : patch.description,
          expiresAt: patch.expiresAt === undefined ? current.expiresAt : patch.expiresAt,
          updatedAt: now,
        };
        this.#updateKey.run(updated);
        this.#audit({ action: "api_key.updated", outcome: "success", ...this.#who(actor), keyId, changes }, now);
        return { ok: true, key: updated, changed: true };
      })
      .immediate();
  }

  async revokeKey(actor: Actor, keyId: string): Promise<MutationResult> {
    return this.#db
      .transaction((): MutationResult => {
        const current = this.#selectKey.get(keyId, actor.tenantId);
        if (!current) return { ok: false, reason: "NOT_FOUND" };
        if (current.revokedAt !== null) return { ok: true, key: current, changed: false };

        const now = this.#clock();
        this.#revokeKey.run({ keyId, now });
        const changes: Changes = { revoked_at: { from: null, to: toIso(now) } };
        this.#audit({ action: "api_key.revoked", outcome: "success", ...this.#who(actor), keyId, changes }, now);
        return { ok: true, key: { ...current, revokedAt: now, updatedAt: now }, changed: true };
      })
      .immediate();
  }

  async recordDenial(denial: Denial): Promise<void> {
    this.#audit(
      {
        action: "auth.denied",
        outcome: "denied",
        tenantId: denial.tenantId,
        actor: denial.actor,
        keyId: denial.keyId,
        tool: denial.tool,
        reason: denial.reason,
      },
      this.#clock(),
    );
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }

  #who(actor: Actor): { tenantId: string; actor: string } {
    return { tenantId: actor.tenantId, actor: actor.subject };
  }

  #listStatement(query: ListKeysQuery, paged: boolean): Database.Statement<Record<string, unknown>, ListRow> {
    const status = query.status ?? "default";
    const shape = `${status}|${paged}|${query.environment !== undefined}|${query.type !== undefined}`;
    let statement = this.#listStatements.get(shape);
    if (!statement) {
      statement = this.#db.prepare(
        `SELECT seq, ${KEY_COLUMNS} FROM api_keys
         WHERE tenant_id = @tenantId ${paged ? "AND seq < @after" : ""}
           ${query.environment !== undefined ? "AND environment = @environment" : ""}
           ${query.type !== undefined ? "AND type = @type" : ""}
           ${STATUS_CONDITIONS[status]}
         ORDER BY seq DESC LIMIT @limit`,
      );
      this.#listStatements.set(shape, statement);
    }
    return statement;
  }
}
