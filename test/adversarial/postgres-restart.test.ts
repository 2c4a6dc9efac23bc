import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../../src/keys/secret.js";
import { recordFigures } from "../helpers/figures.js";
import { auditVerify, waitUntil } from "../helpers/postgres-checks.js";
import { createTestDatabase, startPostgresServer, type PostgresServer } from "../helpers/postgres.js";
import type { CallOutcome } from "../helpers/server.js";
import { spawnClient, within, type SpawnedClient } from "../helpers/spawn.js";
import { merchantToken, TEST_SECRET } from "../helpers/tokens.js";

const INSTANCES = 2;
/** Clients per instance, each running create → verify → update → revoke over and over. */
const WORKERS = 8;
/** Times every connection of the instances is terminated by the server (pg_terminate_backend) before the stop. */
const TERMINATIONS = 3;
/** Acknowledged calls between two faults, and after the restart. */
const ACKS_BETWEEN_FAULTS = 30;
const TENANT = "merchant_pg_restart";

interface Call {
  instance: number;
  tool: string;
  started: number;
  ended: number;
  /** "OK" or the error code. */
  code: string;
}

/**
 * Clients that keep working, whatever answers they get, until told to stop: every call is
 * recorded with when it started and ended, and what each acknowledged.
 */
class Load {
  readonly calls: Call[] = [];
  /** Keys whose create was acknowledged, with the plaintext handed over. */
  readonly created = new Map<string, { plaintext: string; instance: number; name: string }>();
  readonly renamed = new Set<string>();
  readonly revoked = new Set<string>();
  /** VALID expected: anything else a verification answered with success. */
  readonly wrongVerifications: string[] = [];
  /** VALID verifications answered, per key: each a counted use. */
  readonly uses = new Map<string, number>();
  #stopping = false;
  /** Each returns true once it is done, and is then dropped. */
  #watchers: (() => boolean)[] = [];
  #workers: Promise<void>[] = [];

  constructor(readonly servers: SpawnedClient[]) {}

  start(): void {
    this.#workers = this.servers.flatMap((_, instance) => Array.from({ length: WORKERS }, (_, w) => this.#work(instance, w)));
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#workers);
  }

  /** Acknowledged calls so far, of one instance or of all. */
  acks(instance?: number, since = 0): number {
    return this.calls.filter((call) => call.code === "OK" && call.started >= since && (instance === undefined || call.instance === instance)).length;
  }

  /** Resolves once `predicate` holds, checked after every answer; rejects after `timeoutMs`. */
  until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return within(
      new Promise<void>((resolve) => {
        const check = () => {
          if (!predicate()) return false;
          resolve();
          return true;
        };
        if (!check()) this.#watchers.push(check);
      }),
      timeoutMs,
      what,
    );
  }

  async call(instance: number, tool: string, args: Record<string, unknown>): Promise<CallOutcome> {
    const started = Date.now();
    const outcome = await this.servers[instance]!.call(tool, args);
    this.calls.push({ instance, tool, started, ended: Date.now(), code: outcome.ok ? "OK" : outcome.code });
    this.#watchers = this.#watchers.filter((watcher) => !watcher());
    return outcome;
  }

  async #work(instance: number, worker: number): Promise<void> {
    for (let round = 0; !this.#stopping; round++) {
      const name = `i${instance} w${worker} #${round}`;
      const created = await this.call(instance, "create_api_key", { name });
      if (!created.ok) continue;
      const keyId = created.data.key.key_id as string;
      const plaintext = created.data.api_key as string;
      this.created.set(keyId, { plaintext, instance, name });
      const verified = await this.call(instance, "verify_api_key", { api_key: plaintext });
      if (verified.ok && verified.data.code !== "VALID") this.wrongVerifications.push(`${keyId}: ${verified.data.code}`);
      if (verified.ok && verified.data.code === "VALID") this.uses.set(keyId, (this.uses.get(keyId) ?? 0) + 1);
      if ((await this.call(instance, "update_api_key", { key_id: keyId, name: `${name} renamed` })).ok) this.renamed.add(keyId);
      if ((await this.call(instance, "delete_api_key", { key_id: keyId })).ok) this.revoked.add(keyId);
    }
  }
}

/** One well-formed call of every tool, each needing the store: what an instance is asked while PostgreSQL is away. */
function everyTool(probe: { keyId: string; plaintext: string }): [string, Record<string, unknown>][] {
  return [
    ["create_api_key", { name: "while away" }],
    ["list_api_keys", {}],
    ["get_api_key", { key_id: probe.keyId }],
    ["update_api_key", { key_id: probe.keyId, name: "while away" }],
    ["delete_api_key", { key_id: probe.keyId }],
    ["rotate_api_key", { key_id: probe.keyId, grace_period: "1h" }],
    ["verify_api_key", { api_key: probe.plaintext }],
    ["list_audit_events", {}],
  ];
}

interface NothingLost {
  calls: Map<string, number>;
  whileAway: number;
  committedKeys: number;
  overcounted: number;
}

interface Outage {
  /** When PostgreSQL was gone (stopped, or frozen), and when it was being brought back. */
  from: number;
  to: number;
  /** Every tool's answer on every instance while it was away, as "instance tool: code". */
  probes: string[];
  /** When the first call started after it was back, per instance, answered with success, in ms after `to`. */
  recoveredAfterMs: number;
}

// H2.6: PostgreSQL goes away under load — its connections cut, the server stopped (a restart, a
// failover) or frozen (a hung host, a network cut: connections stay open, nothing answers).
// While it is away every call answers ERR_BUSY, without a crash; once it is back the same
// processes serve again without being restarted, and nothing they acknowledged is lost. The
// suite runs a PostgreSQL server of its own, so that stopping it does not disturb the suites
// sharing the run's.
describe("PostgreSQL away under load: connections cut, server stopped or frozen", () => {
  let postgres: PostgresServer;
  let url: string;
  let admin: pg.Pool;
  let servers: SpawnedClient[] = [];
  /** Instances outside the load. */
  let others: SpawnedClient[] = [];
  let load: Load | undefined;

  beforeAll(async () => {
    postgres = await startPostgresServer();
  });
  afterAll(async () => {
    await postgres.remove();
  });
  beforeEach(async () => {
    url = await createTestDatabase(postgres.adminUrl);
    // Not the server's application_name, so terminating the instances' connections spares this pool.
    admin = new pg.Pool({ connectionString: url, max: 2, application_name: "test-admin" });
    admin.on("error", () => {});
  });
  afterEach(async () => {
    await postgres.thaw();
    await postgres.start();
    await load?.stop();
    load = undefined;
    await Promise.all([...servers, ...others].map((server) => server.close()));
    servers = [];
    others = [];
    await admin.end();
  });

  async function spawnInstance(i: number): Promise<SpawnedClient> {
    return spawnClient({
      API_KEYS_MCP_JWT_SECRET: TEST_SECRET,
      API_KEYS_MCP_DATABASE_URL: url,
      API_KEYS_MCP_TOKEN: await merchantToken(TENANT, `user_${i}`),
      API_KEYS_MCP_RATE_LIMIT_READ: "1000000",
      API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000",
      API_KEYS_MCP_LOG_LEVEL: "warn",
    });
  }

  /** The instances, a probe key for each, and the load already running. */
  async function startInstances(): Promise<{ load: Load; probeKeys: { keyId: string; plaintext: string }[] }> {
    servers = await Promise.all(Array.from({ length: INSTANCES }, (_, i) => spawnInstance(i)));
    const probeKeys = await Promise.all(
      servers.map(async (server) => {
        const created = await server.call("create_api_key", { name: "probe" });
        if (!created.ok) throw new Error(created.text);
        return { keyId: created.data.key.key_id as string, plaintext: created.data.api_key as string };
      }),
    );
    load = new Load(servers);
    load.start();
    return { load, probeKeys };
  }

  /**
   * Takes PostgreSQL away once the load has had `ACKS_BETWEEN_FAULTS` more answers, asks every
   * tool on every instance while it is away, brings it back once they have all answered, and
   * waits until each instance has served the load again.
   */
  async function outage(load: Load, probeKeys: { keyId: string; plaintext: string }[], away: () => Promise<void>, back: () => Promise<void>): Promise<Outage> {
    const acked = load.acks();
    await load.until(() => load.acks() >= acked + ACKS_BETWEEN_FAULTS, 30_000, `${ACKS_BETWEEN_FAULTS} acknowledged calls before the outage`);
    await away();
    const from = Date.now();
    const probes = await within(
      Promise.all(
        servers.flatMap((_, instance) =>
          everyTool(probeKeys[instance]!).map(async ([tool, args]) => {
            const outcome = await load.call(instance, tool, args);
            return `${instance} ${tool}: ${outcome.ok ? "OK" : outcome.code}`;
          }),
        ),
      ),
      20_000,
      "every tool's answer while PostgreSQL is away",
    );
    const to = Date.now();
    await back();
    await load.until(() => servers.every((_, instance) => load.acks(instance, to) >= ACKS_BETWEEN_FAULTS), 30_000, "each instance serving again");
    const firstAnswers = servers.map((_, instance) =>
      Math.min(...load.calls.filter((call) => call.instance === instance && call.code === "OK" && call.started >= to).map((call) => call.ended)),
    );
    return { from, to, probes, recoveredAfterMs: Math.max(...firstAnswers) - to };
  }

  /**
   * After the load has stopped: only two answers ever (the work done, or ERR_BUSY — nothing
   * changed, or a commit whose outcome a lost connection hid), only ERR_BUSY while PostgreSQL
   * was away, no process lost, nothing acknowledged lost, nothing changed without its audit row
   * or audited without its change, and one chain that verifies. Returns what was stored.
   */
  /** The figures of a run with one outage, as docs/security.md reports them. */
  function outageFigures(load: Load, away: Outage, { calls, whileAway, committedKeys, overcounted }: NothingLost) {
    return {
      instances: INSTANCES,
      clients: INSTANCES * WORKERS,
      calls: load.calls.length,
      acknowledged: calls.get("OK") ?? 0,
      err_busy: calls.get("ERR_BUSY") ?? 0,
      outage_ms: away.to - away.from,
      calls_while_away: whileAway,
      recovered_after_ms: away.recoveredAfterMs,
      acknowledged_keys: load.created.size,
      committed_keys: committedKeys,
      valid_verifications: [...load.uses.values()].reduce((a, b) => a + b, 0),
      keys_with_uses_counted_twice: overcounted,
      lost: 0,
    };
  }

  async function expectNothingLost(load: Load, outages: Outage[]): Promise<NothingLost> {
    const codes = new Map<string, number>();
    for (const call of load.calls) codes.set(call.code, (codes.get(call.code) ?? 0) + 1);
    expect([...codes.keys()].sort()).toEqual(["ERR_BUSY", "OK"]);
    let whileAway = 0;
    for (const { from, to, probes } of outages) {
      expect(probes.map((probe) => probe.replace(/: .*/, ": ERR_BUSY"))).toEqual(probes);
      const during = load.calls.filter((call) => call.started >= from && call.ended <= to);
      expect(during.length).toBeGreaterThanOrEqual(probes.length);
      expect(during.filter((call) => call.code !== "ERR_BUSY")).toEqual([]);
      whileAway += during.length;
    }
    expect(load.wrongVerifications).toEqual([]);
    // No process died or was replaced: the same ones answered throughout.
    for (const server of servers) expect(() => process.kill(server.pid, 0)).not.toThrow();
    const errors = servers.flatMap((server) => server.stderr.filter((line) => line.includes('"level":"error"')).map((line) => JSON.parse(line) as Record<string, unknown>));
    expect(errors.filter((line) => !(line.msg === "tool_failed" && line.code === "ERR_BUSY"))).toEqual([]);
    // A clean stop writes the uses counted in memory; a write the outage failed was kept for the next.
    await Promise.all(servers.map((server) => server.close()));
    servers = [];

    const rows = new Map(
      (
        await admin.query<{ key_id: string; tenant_id: string; name: string; key_hash: string; created_by: string; revoked: boolean; usage_count: number }>(
          `SELECT key_id, tenant_id, name, key_hash, created_by, revoked_at IS NOT NULL AS revoked, COALESCE(u.usage_count, 0) AS usage_count
           FROM api_keys k LEFT JOIN key_usage u ON u.key_seq = k.seq`,
        )
      ).rows.map((row) => [row.key_id, row]),
    );
    const events = new Map<string, string[]>();
    for (const event of (await admin.query<{ key_id: string; action: string }>("SELECT key_id, action FROM audit_events ORDER BY seq")).rows) {
      events.set(event.key_id, [...(events.get(event.key_id) ?? []), event.action]);
    }
    const lost: string[] = [];
    let overcounted = 0;
    for (const [keyId, { plaintext, instance, name }] of load.created) {
      const row = rows.get(keyId);
      if (!row) {
        lost.push(`create ${keyId}`);
        continue;
      }
      expect({ tenant: row.tenant_id, hash: row.key_hash, by: row.created_by }).toEqual({ tenant: TENANT, hash: hashApiKey(plaintext), by: `user_${instance}` });
      if (load.renamed.has(keyId) && row.name !== `${name} renamed`) lost.push(`update ${keyId}`);
      if (load.revoked.has(keyId) && !row.revoked) lost.push(`revoke ${keyId}`);
      // Uses are not acknowledged writes, but none is dropped: at least every VALID answer is
      // counted (a usage write cut off after its commit is written again, so possibly more).
      if (row.usage_count < (load.uses.get(keyId) ?? 0)) lost.push(`uses of ${keyId}: ${row.usage_count} of ${load.uses.get(keyId)}`);
      if (row.usage_count > (load.uses.get(keyId) ?? 0)) overcounted += 1;
    }
    expect(lost).toEqual([]);
    for (const row of rows.values()) {
      const expected = ["api_key.created", ...(row.name.endsWith(" renamed") ? ["api_key.updated"] : []), ...(row.revoked ? ["api_key.revoked"] : [])];
      expect(events.get(row.key_id) ?? [], row.key_id).toEqual(expected);
    }
    expect([...events.keys()].filter((keyId) => !rows.has(keyId))).toEqual([]);
    const verification = await auditVerify(url);
    expect(verification).toMatchObject({ code: 0, stderr: "" });
    return { calls: codes, whileAway, committedKeys: rows.size, overcounted };
  }

  it(`${INSTANCES} instances: connections cut ${TERMINATIONS} times, then PostgreSQL stopped and started: ERR_BUSY while down, recovery without restart, nothing acknowledged lost`, async () => {
    const { load, probeKeys } = await startInstances();

    // Lost connections: every connection of both instances cut at once, three times.
    let terminated = 0;
    for (let cut = 0; cut < TERMINATIONS; cut++) {
      const acked = load.acks();
      await load.until(() => load.acks() >= acked + ACKS_BETWEEN_FAULTS, 30_000, `${ACKS_BETWEEN_FAULTS} acknowledged calls before cut ${cut + 1}`);
      const { rows } = await admin.query(
        "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'api-keys-mcp'",
      );
      terminated += rows.filter((row) => row.done === true).length;
    }
    expect(terminated).toBeGreaterThanOrEqual(TERMINATIONS * INSTANCES);

    // A fast shutdown: sessions ended, transactions in flight rolled back; then a start on the
    // same data. Meanwhile another instance starts: it cannot reach the store either.
    let late: Promise<{ instance: SpawnedClient; answers: string[] }> | undefined;
    const stopped = await outage(
      load,
      probeKeys,
      async () => {
        await postgres.stop();
        late = spawnInstance(INSTANCES).then(async (instance) => {
          others.push(instance);
          const answers = await Promise.all(
            everyTool(probeKeys[0]!).map(async ([tool, args]) => {
              const outcome = await instance.call(tool, args);
              return `${tool}: ${outcome.ok ? "OK" : outcome.code}`;
            }),
          );
          return { instance, answers };
        });
      },
      async () => {
        await within(late!, 20_000, "the late instance's answers while PostgreSQL is down");
        await postgres.start();
      },
    );
    // Started while PostgreSQL was down, it answered ERR_BUSY, and serves now that it is back.
    const { instance: lateInstance, answers: lateAnswers } = await late!;
    expect(lateAnswers).toEqual(everyTool(probeKeys[0]!).map(([tool]) => `${tool}: ERR_BUSY`));
    await waitUntil(async () => (await lateInstance.call("list_api_keys", {})).ok, 20_000, "the instance started while PostgreSQL was down serving");
    const lateErrors = lateInstance.stderr.filter((line) => line.includes('"level":"error"')).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lateErrors.filter((line) => !((line.msg === "tool_failed" && line.code === "ERR_BUSY") || line.msg === "database_open_failed"))).toEqual([]);
    await load.stop();
    const checked = await expectNothingLost(load, [stopped]);

    recordFigures("postgres-restart", {
      ...outageFigures(load, stopped, checked),
      connection_cuts: TERMINATIONS,
      connections_terminated: terminated,
      postgres_stops: 1,
      instances_started_while_down: 1,
    });
  }, 120_000);

  it(`${INSTANCES} instances: PostgreSQL frozen (connections open, no answers), then resumed: ERR_BUSY while frozen, recovery, nothing acknowledged lost`, async () => {
    const { load, probeKeys } = await startInstances();
    const frozen = await outage(
      load,
      probeKeys,
      () => postgres.freeze(),
      () => postgres.thaw(),
    );
    await load.stop();
    recordFigures("postgres-freeze", { ...outageFigures(load, frozen, await expectNothingLost(load, [frozen])), postgres_freezes: 1 });
  }, 120_000);
});
