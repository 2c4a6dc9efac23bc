import { hash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { auditHash, GENESIS_HASH, verifyChain, type ChainedRow, type StoredRow } from "../../src/audit/chain.js";

const ROW: ChainedRow = {
  event_id: "evt_0000000000000000aaaa",
  occurred_at: 1_700_000_000_000,
  action: "api_key.created",
  outcome: "success",
  tenant_id: "merchant_a",
  actor: "alice",
  key_id: "key_AAAAAAAAAAAAAAAAAAAA",
  tool: null,
  reason: null,
  changes: '{"name":{"from":null,"to":"x"}}',
};

/** The hash as versions before the client columns computed it, written out here on purpose. */
const hashBeforeClients = (prev: string, row: ChainedRow) =>
  hash(
    "sha256",
    `${prev}\n${JSON.stringify([row.event_id, row.occurred_at, row.action, row.outcome, row.tenant_id, row.actor, row.key_id, row.tool, row.reason, row.changes])}`,
    "hex",
  );

describe("auditHash and the client columns", () => {
  it("hashes a row without a client exactly as before the columns existed, absent or null", () => {
    const expected = hashBeforeClients(GENESIS_HASH, ROW);
    expect(auditHash(GENESIS_HASH, ROW)).toBe(expected);
    expect(auditHash(GENESIS_HASH, { ...ROW, client_name: null, client_version: null })).toBe(expected);
  });

  it("covers the client when there is one: each of its fields changes the hash", () => {
    const withClient = { ...ROW, client_name: "claude-code", client_version: "2.1.0" };
    const hashes = [
      auditHash(GENESIS_HASH, ROW),
      auditHash(GENESIS_HASH, withClient),
      auditHash(GENESIS_HASH, { ...withClient, client_name: "cursor" }),
      auditHash(GENESIS_HASH, { ...withClient, client_version: "2.1.1" }),
      auditHash(GENESIS_HASH, { ...withClient, client_name: null }),
      auditHash(GENESIS_HASH, { ...withClient, client_version: null }),
      // A value cannot move between the client columns and the others unnoticed.
      auditHash(GENESIS_HASH, { ...withClient, client_name: "2.1.0", client_version: "claude-code" }),
    ];
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  it("verifies a chain where rows without a client come before rows with one, and breaks when one is edited", () => {
    const rows: StoredRow[] = [];
    let previous = GENESIS_HASH;
    for (const [seq, client] of [[1, null], [2, "claude-code"], [3, null]] as const) {
      const row: ChainedRow = { ...ROW, event_id: `evt_${seq}`, client_name: client, client_version: client && "2.1.0" };
      const stored = { ...row, seq, prev_hash: previous, hash: auditHash(previous, row), hash_alg: "sha256" as const };
      rows.push(stored);
      previous = stored.hash;
    }
    expect(verifyChain(rows)).toMatchObject({ ok: true, rows: 3 });
    expect(verifyChain(rows.map((row) => (row.seq === 2 ? { ...row, client_name: "cursor" } : row)))).toMatchObject({ ok: false, seq: 2 });
    expect(verifyChain(rows.map((row) => (row.seq === 3 ? { ...row, client_name: "cursor", client_version: "1" } : row)))).toMatchObject({ ok: false, seq: 3 });
  });
});
