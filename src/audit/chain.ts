import { createHmac, hash } from "node:crypto";
import { newEventId } from "../keys/ids.js";
import type { AuditEntry } from "./events.js";

/** The `prev_hash` of the first row. */
export const GENESIS_HASH = "0".repeat(64);

/** How a row's hash was made: plain SHA-256, or an HMAC under the operator's audit key. */
export type HashAlgorithm = "sha256" | "hmac-sha256";

/** The columns an audit row's hash covers (all but its position and its hash columns). */
export interface ChainedRow {
  event_id: string;
  occurred_at: number;
  action: string;
  outcome: string;
  tenant_id: string | null;
  actor: string | null;
  key_id: string | null;
  tool: string | null;
  reason: string | null;
  changes: string | null;
  /** The MCP client, both null when unknown (and absent from rows read before the columns existed). */
  client_name?: string | null;
  client_version?: string | null;
}

/** An audit row as stored: the chained columns, its position, its two hashes and how they were made. */
export type StoredRow = ChainedRow & { seq: number; prev_hash: string; hash: string; hash_alg: HashAlgorithm };

/**
 * Tamper evidence: each row's hash covers the previous row's hash and the row's own content, so
 * changing, removing or reordering any row breaks every hash after it. With an audit key (kept
 * outside the database) the hash is an HMAC: someone who can write the database can no longer
 * recompute a chain that verifies. Cutting rows off the end shows only against a head hash kept
 * elsewhere (`audit verify --expect-head`).
 *
 * Columns added later join the hashed content only when they hold a value, so rows written
 * before them keep their hashes, while a value put into such a column afterwards, or taken out,
 * breaks the chain like any other change.
 */
export function auditHash(prevHash: string, row: ChainedRow, auditKey?: Uint8Array): string {
  const fields = firstColumns(row);
  const clientName = row.client_name ?? null;
  const clientVersion = row.client_version ?? null;
  if (clientName !== null || clientVersion !== null) fields.push(clientName, clientVersion);
  const content = `${prevHash}\n${JSON.stringify(fields)}`;
  return auditKey ? createHmac("sha256", auditKey).update(content).digest("hex") : hash("sha256", content, "hex");
}

/** The row an audit entry becomes at `occurredAt`, with a new event id: what both backends store and hash. */
export function chainedRow(entry: AuditEntry, occurredAt: number): ChainedRow {
  return {
    event_id: newEventId(occurredAt),
    occurred_at: occurredAt,
    action: entry.action,
    outcome: entry.outcome,
    tenant_id: entry.tenantId,
    actor: entry.actor,
    key_id: entry.keyId,
    tool: entry.tool ?? null,
    reason: entry.reason ?? null,
    changes: entry.changes ? JSON.stringify(entry.changes) : null,
    client_name: entry.client?.name ?? null,
    client_version: entry.client?.version ?? null,
  };
}

/** The columns an audit row is inserted with, in the order of `auditInsertValues`. */
export const AUDIT_INSERT_COLUMNS =
  "event_id, occurred_at, action, outcome, tenant_id, actor, key_id, tool, reason, changes, client_name, client_version, prev_hash, hash, hash_alg";

/** The values of an audit row as inserted: its chained columns, then its place in the chain. */
export function auditInsertValues(row: ChainedRow, prevHash: string, hash: string, algorithm: HashAlgorithm): unknown[] {
  return [...firstColumns(row), row.client_name ?? null, row.client_version ?? null, prevHash, hash, algorithm];
}

/** The columns every audit row has had from the first version, in the order they are hashed and inserted. */
function firstColumns(row: ChainedRow): unknown[] {
  return [row.event_id, row.occurred_at, row.action, row.outcome, row.tenant_id, row.actor, row.key_id, row.tool, row.reason, row.changes];
}

export type ChainVerification =
  | { ok: true; rows: number; head: string; /** Rows chained without the audit key, before the first keyed one. */ unkeyed: number }
  /** A row that does not verify: changed, removed, inserted, reordered, or rewritten without the key. */
  | { ok: false; kind: "broken"; rows: number; seq: number; eventId: string; problem: string }
  /** The chain verifies but lacks the expected head: rows were cut off its end. */
  | { ok: false; kind: "cut"; rows: number; problem: string }
  /** Keyed rows and no key to check them with. */
  | { ok: false; kind: "key-required"; rows: number; problem: string };

export interface VerifyChainOptions {
  /** The audit key: without it, HMAC-chained rows cannot be checked and verification stops there. */
  auditKey?: Uint8Array;
  /** A head hash taken earlier: it must still be in the chain, or rows were cut off the end. */
  expectHead?: string;
}

export interface ChainVerifier {
  /** Checks the next row of the chain, in log order: the verdict if it breaks the chain, else undefined. */
  add(row: StoredRow): ChainVerification | undefined;
  /** The verdict once every row has been added. */
  finish(): ChainVerification;
}

/** Checks a chain row by row, so a backend can stream rows of any number through it. */
export function createChainVerifier(options: VerifyChainOptions = {}): ChainVerifier {
  let previous = GENESIS_HASH;
  let count = 0;
  let keyed = false;
  let unkeyed = 0;
  let sawExpected = options.expectHead === undefined;
  return {
    add(row) {
      count += 1;
      const broken = (problem: string): ChainVerification => ({ ok: false, kind: "broken", rows: count, seq: row.seq, eventId: row.event_id, problem });
      if (row.prev_hash !== previous) return broken("its prev_hash does not match the row before it (a row was removed, inserted or reordered)");
      if (row.hash_alg === "hmac-sha256") {
        if (!options.auditKey) {
          return { ok: false, kind: "key-required", rows: count, problem: "the chain is keyed with the audit key from here on; give API_KEYS_MCP_AUDIT_KEY to check it" };
        }
        keyed = true;
      } else if (keyed) {
        return broken("it is not keyed although rows before it are (the chain was rewritten without the audit key)");
      } else {
        unkeyed += 1;
      }
      if (auditHash(previous, row, row.hash_alg === "hmac-sha256" ? options.auditKey : undefined) !== row.hash) {
        return broken(
          row.hash_alg === "hmac-sha256"
            ? "its content does not match its hash under the audit key (the row was changed, or the key is not the one it was written with)"
            : "its content does not match its hash (the row was changed)",
        );
      }
      previous = row.hash;
      if (row.hash === options.expectHead) sawExpected = true;
      return undefined;
    },
    finish() {
      if (!sawExpected) {
        return { ok: false, kind: "cut", rows: count, problem: "the expected head hash is not in the chain: rows were cut off its end, or the chain was rebuilt" };
      }
      return { ok: true, rows: count, head: previous, unkeyed };
    },
  };
}

/** Walks the whole chain in order; stops at the first row that does not verify. */
export function verifyChain(rows: Iterable<StoredRow>, options: VerifyChainOptions = {}): ChainVerification {
  const verifier = createChainVerifier(options);
  for (const row of rows) {
    const broken = verifier.add(row);
    if (broken) return broken;
  }
  return verifier.finish();
}
