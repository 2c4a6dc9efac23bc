import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../../src/keys/secret.js";
import { createPool } from "../../src/store/postgres/pool.js";
import { recordFigures } from "../helpers/figures.js";
import { auditVerify, mapLimited, waitUntil } from "../helpers/postgres-checks.js";
import { createTestDatabase } from "../helpers/postgres.js";
import type { CallOutcome } from "../helpers/server.js";
import { spawnClient, within, type SpawnedClient } from "../helpers/spawn.js";
import { merchantToken, TEST_SECRET } from "../helpers/tokens.js";

const PROCESSES = 4;
const CREATES = 100;
const UPDATES = 50;
const REVOKES = 50;
/** Keys every process verifies, each this many times: their counts must add up across instances. */
const VERIFIED_KEYS = 10;
const VERIFICATIONS = 5;
const TENANT = "merchant_pg_shared_load";
/**
 * Calls each process has in flight at once: as many as its pooled connections, so every
 * connection of every instance is busy and 40 transactions contend for the chain's head row.
 * Not all 100 at once: a call's 5 s budget runs from its arrival, and with every call of a phase
 * sent at once the last one's wait is the whole phase's duration — a throughput floor, which
 * depends on the machine (the benchmark measures throughput; this suite checks that contention
 * never fails a call).
 */
const IN_FLIGHT = 10;
/** Times another session (a psql prompt left open, a maintenance job) holds the audit chain's head row, and for how long: over the creates. */
const HEAD_HOLDS = 4;
const HEAD_HOLD_MS = 250;

/**
 * An unlucky neighbour: another session that, every 250 ms, locks the audit chain's head row
 * for 250 ms — the lock every write of every instance takes last — so that each write queues
 * behind it and must wait it out, not fail. `holding` resolves while the first hold is in
 * place, so that work started then meets it; `done` with the number of holds.
 */
function holdHeadRow(url: string): { holding: Promise<void>; done: Promise<number> } {
  const client = new pg.Client({ connectionString: url, application_name: "neighbour" });
  let signalHolding!: () => void;
  const holding = new Promise<void>((resolve) => (signalHolding = resolve));
  const done = (async () => {
    await client.connect();
    try {
      for (let holds = 0; holds < HEAD_HOLDS; holds++) {
        await client.query("BEGIN");
        await client.query("SELECT hash FROM audit_head WHERE id = 1 FOR UPDATE");
        if (holds === 0) signalHolding();
        await client.query("SELECT pg_sleep($1)", [HEAD_HOLD_MS / 1000]);
        await client.query("COMMIT");
        await client.query("SELECT pg_sleep($1)", [HEAD_HOLD_MS / 1000]);
      }
      return HEAD_HOLDS;
    } finally {
      await client.end();
    }
  })();
  return { holding, done };
}

/** The data of a successful call; a failure is collected, not thrown, so every one is reported. */
function collect(failures: string[], label: string) {
  return (outcome: CallOutcome) => {
    if (!outcome.ok) failures.push(`${label}: ${outcome.text}`);
    return outcome.ok ? outcome.data : undefined;
  };
}

interface Created {
  keyId: string;
  name: string;
  plaintext: string;
}

// H2: several instances share one PostgreSQL database. Every write is one transaction that takes
// the key's row lock and then the chain's head row; contention between instances, and a session
// sitting on the head row, must be waited out, never reach a client as an error, and leave one
// audit chain.
describe(`${PROCESSES} server processes on one PostgreSQL database, all writing at once`, () => {
  let url: string;
  let admin: pg.Pool;
  let servers: SpawnedClient[] = [];

  beforeEach(async () => {
    url = await createTestDatabase();
    admin = createPool(url, { max: 2 });
  });
  afterEach(async () => {
    await Promise.all(servers.map((server) => server.close()));
    servers = [];
    await admin.end();
  });

  it(`each creates ${CREATES} keys, then updates ${UPDATES} and revokes ${REVOKES} of another's, ${IN_FLIGHT} calls in flight: no errors, nothing lost, one verified chain`, async () => {
    servers = await Promise.all(
      Array.from({ length: PROCESSES }, async (_, p) =>
        spawnClient({
          API_KEYS_MCP_JWT_SECRET: TEST_SECRET,
          API_KEYS_MCP_DATABASE_URL: url,
          API_KEYS_MCP_TOKEN: await merchantToken(TENANT, `user_${p}`),
          API_KEYS_MCP_RATE_LIMIT_READ: "1000000",
          API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000",
          API_KEYS_MCP_LOG_LEVEL: "warn",
        }),
      ),
    );
    // The first instance to start migrates; the head row exists once it has.
    await waitUntil(
      async () => (await admin.query("SELECT to_regclass('audit_head') IS NOT NULL AS ready")).rows[0].ready === true,
      10_000,
      "the schema's migration",
    );
    const failures: string[] = [];
    // A failure is reported with what the servers logged about it (the cause of an ERR_BUSY).
    const expectNoFailures = () =>
      expect({ failures, logged: servers.flatMap((server) => server.stderr.filter((line) => line.includes('"level":"error"'))) }).toEqual({ failures: [], logged: [] });

    // The creates start while the neighbour holds the head row: every instance's first writes wait it out.
    const neighbour = holdHeadRow(url);
    await within(neighbour.holding, 10_000, "the neighbour's first hold");
    const creating = Promise.all(
      servers.map(async (server, p) => {
        const created = await mapLimited(Array.from({ length: CREATES }, (_, i) => `p${p} key ${i}`), IN_FLIGHT, async (name) => {
          const data = collect(failures, "create")(await server.call("create_api_key", { name }));
          return data && { keyId: data.key.key_id as string, name, plaintext: data.api_key as string };
        });
        return created.filter((key): key is Created => key !== undefined);
      }),
    );
    const byProcess = await creating;
    expectNoFailures();

    // Each process changes the keys the next one created: it has never seen them but in the shared store.
    const owner = (p: number) => (p + 1) % PROCESSES;
    const changing = Promise.all(
      servers.map((server, p) => {
        const theirs = byProcess[owner(p)]!;
        // Updates and revokes interleaved, so both kinds contend at once.
        return mapLimited(theirs.slice(0, UPDATES + REVOKES), IN_FLIGHT, (key, i) =>
          i < UPDATES
            ? server.call("update_api_key", { key_id: key.keyId, name: `renamed by p${p} ${i}`, description: "updated under load" }).then(collect(failures, "update"))
            : server.call("delete_api_key", { key_id: key.keyId }).then(collect(failures, "revoke")),
        );
      }),
    );
    const [holds] = await Promise.all([neighbour.done, changing]);
    expectNoFailures();

    // Every instance checks the same keys; the counts each one batches are added, never overwritten.
    const verified = byProcess[0]!.slice(0, VERIFIED_KEYS);
    await Promise.all(
      servers.map((server) =>
        mapLimited(
          verified.flatMap((key) => Array<Created>(VERIFICATIONS).fill(key)),
          IN_FLIGHT,
          async (key) => {
            const answer = collect(failures, "verify")(await server.call("verify_api_key", { api_key: key.plaintext }));
            if (answer && answer.code !== "VALID") failures.push(`verify: ${answer.code}`);
          },
        ),
      ),
    );
    expectNoFailures();
    await waitUntil(
      async () =>
        (
          await admin.query<{ total: number }>(
            "SELECT COALESCE(sum(u.usage_count), 0)::int AS total FROM key_usage u JOIN api_keys k ON k.seq = u.key_seq WHERE k.key_id = ANY($1)",
            [verified.map((key) => key.keyId)],
          )
        ).rows[0]!.total === PROCESSES * VERIFIED_KEYS * VERIFICATIONS,
      10_000,
      "every instance's counted uses reaching the store",
    );
    const usage = await admin.query<{ usage_count: number }>(
      "SELECT u.usage_count FROM key_usage u JOIN api_keys k ON k.seq = u.key_seq WHERE k.key_id = ANY($1)",
      [verified.map((key) => key.keyId)],
    );
    expect(usage.rows.map((row) => row.usage_count)).toEqual(Array(VERIFIED_KEYS).fill(PROCESSES * VERIFICATIONS));


    // Every acknowledged key, with its exact final state.
    const total = PROCESSES * CREATES;
    const stored = new Map(
      (
        await admin.query<{ key_id: string; tenant_id: string; name: string; description: string | null; key_hash: string; created_by: string; revoked: boolean }>(
          "SELECT key_id, tenant_id, name, description, key_hash, created_by, revoked_at IS NOT NULL AS revoked FROM api_keys",
        )
      ).rows.map((row) => [row.key_id, row]),
    );
    expect(stored.size).toBe(total);
    const lost: string[] = [];
    for (const [p, keys] of byProcess.entries()) {
      expect(keys).toHaveLength(CREATES);
      const changer = (p + PROCESSES - 1) % PROCESSES;
      for (const [i, key] of keys.entries()) {
        const row = stored.get(key.keyId);
        if (!row) {
          lost.push(key.keyId);
          continue;
        }
        expect(row).toEqual({
          key_id: key.keyId,
          tenant_id: TENANT,
          name: i < UPDATES ? `renamed by p${changer} ${i}` : key.name,
          description: i < UPDATES ? "updated under load" : null,
          key_hash: hashApiKey(key.plaintext),
          created_by: `user_${p}`,
          revoked: i >= UPDATES,
        });
      }
    }
    expect(lost).toEqual([]);

    // Exactly one audit row per acknowledged change, attributed to the instance's user that made it.
    const { rows: counts } = await admin.query("SELECT action, count(*)::int AS n FROM audit_events GROUP BY action ORDER BY action");
    expect(counts).toEqual([
      { action: "api_key.created", n: total },
      { action: "api_key.revoked", n: PROCESSES * REVOKES },
      { action: "api_key.updated", n: PROCESSES * UPDATES },
    ]);
    const trails = new Map<string, string[]>();
    for (const row of (await admin.query<{ key_id: string; action: string; actor: string }>("SELECT key_id, action, actor FROM audit_events ORDER BY seq")).rows) {
      trails.set(row.key_id, [...(trails.get(row.key_id) ?? []), `${row.action} ${row.actor}`]);
    }
    for (const [p, keys] of byProcess.entries()) {
      const changer = `user_${(p + PROCESSES - 1) % PROCESSES}`;
      for (const [i, key] of keys.entries()) {
        expect(trails.get(key.keyId)).toEqual([`api_key.created user_${p}`, i < UPDATES ? `api_key.updated ${changer}` : `api_key.revoked ${changer}`]);
      }
    }

    // One chain, not a fork per instance: it verifies, and its head row names the last row.
    const verification = await auditVerify(url);
    expect(verification).toMatchObject({ code: 0, stderr: "" });
    const rows = PROCESSES * (CREATES + UPDATES + REVOKES);
    expect(verification.stdout).toMatch(new RegExp(`^audit chain intact: ${rows} rows checked; head hash [0-9a-f]{64}`));
    const head = (await admin.query("SELECT (SELECT hash FROM audit_head) AS head, (SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1) AS last")).rows[0];
    expect(head.head).toBe(head.last);
    expect(verification.stdout).toContain(`head hash ${head.last}`);

    expect(holds).toBe(HEAD_HOLDS);
    expectNoFailures();
    recordFigures("postgres-four-processes", {
      processes: PROCESSES,
      foreign_head_lock_holds: holds,
      operations: PROCESSES * (CREATES + UPDATES + REVOKES),
      verifications: PROCESSES * VERIFIED_KEYS * VERIFICATIONS,
      audit_rows_verified: rows,
      client_errors: failures.length,
      lost: lost.length,
    });
  }, 120_000);
});
