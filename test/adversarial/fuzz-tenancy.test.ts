import fc from "fast-check";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checksum } from "../../src/keys/format.js";
import { migratePostgres } from "../../src/store/postgres/migrate.js";
import { createPool } from "../../src/store/postgres/pool.js";
import { recordFigures } from "../helpers/figures.js";
import { FUZZ_SEED, fuzzParameters, fuzzTimeout } from "../helpers/fuzz.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { startTestServer, type CallOutcome, type TestServer } from "../helpers/server.js";
import { merchantToken, READ_WRITE } from "../helpers/tokens.js";

/** Runs on SQLite; PostgreSQL, with a network round trip per statement and a schema per run, runs fewer. */
const RUNS = 200;
const POSTGRES_RUNS = 60;
const MAX_COMMANDS = 40;

// Pairs of tenants that differ by as little as possible: case, a trailing space or invisible
// character, a LIKE wildcard, Unicode normalisation. The store compares tenant ids exactly; none
// of these may meet. (A tenant with a NUL never reaches a store: no PostgreSQL text can hold it,
// so the token is refused on either backend, see test/auth/tokens.test.ts.)
const TENANT_PAIRS: [string, string][] = [
  ["merchant_a", "merchant_b"],
  ["merchant_a", "MERCHANT_A"],
  ["acme", "acme\u200b"],
  ["acme", "acme "],
  ["m_1", "m_%"],
  ["caf\u00e9", "cafe\u0301"],
];
/** Two users who may write, and one who may only read. */
const SUBJECTS = ["user_1", "user_2", "user_ro"];
const READ_ONLY = 2;
const STATUSES = [undefined, "active", "expired", "revoked", "all"] as const;
/** "0" retires the old key at once (the clock stands still, so it reads as expired); "1h" leaves it active. */
const GRACES = ["0", "1h"] as const;
/** A well-formed key with a correct checksum that nobody was ever given. */
const NOBODYS_KEY = (() => {
  const head = "sk_test_00000000000000000000Nobody";
  return head + checksum(head);
})();

type Side = 0 | 1;
interface ModelKey {
  side: Side;
  name: string;
  description: string | null;
  revoked: boolean;
  /** Retired by a rotation with no grace period. */
  expired: boolean;
  rotatedFrom: string | null;
  rotatedTo: string | null;
  plaintext: string;
  /** VALID verifications, each one counted use. */
  uses: number;
}
interface Model {
  keys: Map<string, ModelKey>;
  /** Key ids in creation order. */
  order: string[];
  /** Each tenant's audit trail, oldest first, as "action key_id actor". */
  events: [string[], string[]];
  /** Denials of each tenant's read-only user so far: the audit log records the first few only (the clock stands still). */
  denials: [number, number];
}

/** Denials recorded per caller before the bound stops recording them, while the clock stands still. */
const RECORDED_DENIALS = 5;
interface Real {
  server: TestServer;
  tokens: [string[], string[]];
  stats: { crossTenantAttempts: number; rotations: number; validChecks: number };
}

/** A key the command aims at: one that exists (either tenant's), or an id nobody has. */
function target(model: Model, pick: number): string {
  return pick < 0 || model.order.length === 0 ? "key_00000000000000Nobody" : model.order[pick % model.order.length]!;
}

function statusOf(key: ModelKey): "active" | "expired" | "revoked" {
  return key.revoked ? "revoked" : key.expired ? "expired" : "active";
}

/**
 * The read-only user's writes are refused before any key is looked at — the same answer for
 * their own tenant's key, the other tenant's and nobody's — and audited in their own tenant.
 */
function refusedAsReadOnly(outcome: CallOutcome, model: Model, side: Side, subject: number, keyId: string | null): boolean {
  if (subject !== READ_ONLY) return false;
  expect(outcome.ok ? "OK" : outcome.code).toBe("ERR_FORBIDDEN");
  if (model.denials[side]++ < RECORDED_DENIALS) model.events[side].push(`auth.denied ${keyId} ${SUBJECTS[subject]}`);
  return true;
}

function ok(outcome: CallOutcome, what: string) {
  if (!outcome.ok) throw new Error(`${what} failed: ${outcome.text}`);
  return outcome.data;
}

/** A key of another tenant must be answered exactly like a key that does not exist (A5). */
function expectNotFound(outcome: CallOutcome, keyId: string): void {
  expect(outcome.ok ? "OK" : outcome.text).toBe(
    `ERR_NOT_FOUND: No API key ${keyId} exists for this merchant. Check the id, or call list_api_keys to find the key.`,
  );
}

class Create implements fc.AsyncCommand<Model, Real> {
  constructor(readonly side: Side, readonly subject: number, readonly name: string, readonly description: string | null) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const args = { name: this.name, token: real.tokens[this.side][this.subject]!, ...(this.description === null ? {} : { description: this.description }) };
    const outcome = await real.server.call("create_api_key", args);
    if (refusedAsReadOnly(outcome, model, this.side, this.subject, null)) return;
    const data = ok(outcome, "create");
    expect(data.key.created_by).toBe(SUBJECTS[this.subject]);
    model.keys.set(data.key.key_id, {
      side: this.side,
      name: this.name.trim(),
      description: this.description,
      revoked: false,
      expired: false,
      rotatedFrom: null,
      rotatedTo: null,
      plaintext: data.api_key,
      uses: 0,
    });
    model.order.push(data.key.key_id);
    model.events[this.side].push(`api_key.created ${data.key.key_id} ${SUBJECTS[this.subject]}`);
  }
  toString = () => `create(${this.side}, ${JSON.stringify(this.name)})`;
}

class Get implements fc.AsyncCommand<Model, Real> {
  constructor(readonly side: Side, readonly pick: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const keyId = target(model, this.pick);
    const outcome = await real.server.call("get_api_key", { key_id: keyId, token: real.tokens[this.side][0]! });
    const owned = model.keys.get(keyId);
    if (owned?.side !== this.side) {
      if (owned) real.stats.crossTenantAttempts += 1;
      return expectNotFound(outcome, keyId);
    }
    const { key } = ok(outcome, "get");
    expect({
      name: key.name,
      description: key.description,
      status: key.status,
      rotated_from: key.rotated_from,
      rotated_to: key.rotated_to,
      usage_count: key.usage_count,
    }).toEqual({
      name: owned.name,
      description: owned.description,
      status: statusOf(owned),
      rotated_from: owned.rotatedFrom,
      rotated_to: owned.rotatedTo,
      usage_count: owned.uses,
    });
  }
  toString = () => `get(${this.side}, #${this.pick})`;
}

class Update implements fc.AsyncCommand<Model, Real> {
  constructor(readonly side: Side, readonly subject: number, readonly pick: number, readonly name: string) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const keyId = target(model, this.pick);
    const outcome = await real.server.call("update_api_key", { key_id: keyId, name: this.name, token: real.tokens[this.side][this.subject]! });
    const owned = model.keys.get(keyId);
    if (refusedAsReadOnly(outcome, model, this.side, this.subject, keyId)) return;
    if (owned?.side !== this.side) {
      if (owned) real.stats.crossTenantAttempts += 1;
      return expectNotFound(outcome, keyId);
    }
    if (owned.revoked) {
      expect(outcome.ok ? "OK" : outcome.code).toBe("ERR_CONFLICT");
      return;
    }
    expect(ok(outcome, "update").key.name).toBe(this.name.trim());
    // Repeating a change records nothing.
    if (owned.name !== this.name.trim()) model.events[this.side].push(`api_key.updated ${keyId} ${SUBJECTS[this.subject]}`);
    owned.name = this.name.trim();
  }
  toString = () => `update(${this.side}, #${this.pick}, ${JSON.stringify(this.name)})`;
}

class Revoke implements fc.AsyncCommand<Model, Real> {
  constructor(readonly side: Side, readonly subject: number, readonly pick: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const keyId = target(model, this.pick);
    const outcome = await real.server.call("delete_api_key", { key_id: keyId, token: real.tokens[this.side][this.subject]! });
    const owned = model.keys.get(keyId);
    if (refusedAsReadOnly(outcome, model, this.side, this.subject, keyId)) return;
    if (owned?.side !== this.side) {
      if (owned) real.stats.crossTenantAttempts += 1;
      return expectNotFound(outcome, keyId);
    }
    expect(ok(outcome, "revoke").key.status).toBe("revoked");
    if (!owned.revoked) model.events[this.side].push(`api_key.revoked ${keyId} ${SUBJECTS[this.subject]}`);
    owned.revoked = true;
  }
  toString = () => `revoke(${this.side}, #${this.pick})`;
}

class List implements fc.AsyncCommand<Model, Real> {
  constructor(readonly side: Side, readonly status: (typeof STATUSES)[number], readonly limit: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const args: Record<string, unknown> = { limit: this.limit, token: real.tokens[this.side][1]! };
      if (this.status !== undefined) args.status = this.status;
      if (cursor !== null) args.cursor = cursor;
      const page = ok(await real.server.call("list_api_keys", args), "list");
      seen.push(...page.keys.map((key: { key_id: string; usage_count: number }) => `${key.key_id} ${key.usage_count}`));
      cursor = page.next_cursor;
    } while (cursor !== null);
    const wanted = (key: ModelKey) =>
      key.side === this.side && (this.status === "all" || (this.status === undefined ? !key.revoked : statusOf(key) === this.status));
    expect(seen).toEqual(
      model.order
        .filter((id) => wanted(model.keys.get(id)!))
        .map((id) => `${id} ${model.keys.get(id)!.uses}`)
        .reverse(),
    );
  }
  toString = () => `list(${this.side}, ${this.status ?? "default"}, ${this.limit})`;
}

class Rotate implements fc.AsyncCommand<Model, Real> {
  constructor(readonly side: Side, readonly subject: number, readonly pick: number, readonly grace: (typeof GRACES)[number]) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const keyId = target(model, this.pick);
    const outcome = await real.server.call("rotate_api_key", { key_id: keyId, grace_period: this.grace, token: real.tokens[this.side][this.subject]! });
    const owned = model.keys.get(keyId);
    if (refusedAsReadOnly(outcome, model, this.side, this.subject, keyId)) return;
    if (owned?.side !== this.side) {
      if (owned) real.stats.crossTenantAttempts += 1;
      return expectNotFound(outcome, keyId);
    }
    if (owned.revoked || owned.rotatedTo !== null) {
      expect(outcome.ok ? "OK" : outcome.code).toBe("ERR_CONFLICT");
      return;
    }
    const { key, api_key, previous } = ok(outcome, "rotate");
    // The replacement belongs to the rotating tenant, made by the rotating user, linked both ways.
    expect({ name: key.name, description: key.description, status: key.status, created_by: key.created_by, rotated_from: key.rotated_from }).toEqual({
      name: owned.name,
      description: owned.description,
      status: "active",
      created_by: SUBJECTS[this.subject],
      rotated_from: keyId,
    });
    expect({ key_id: previous.key_id, rotated_to: previous.rotated_to, status: previous.status }).toEqual({
      key_id: keyId,
      rotated_to: key.key_id,
      status: this.grace === "0" ? "expired" : "active",
    });
    owned.rotatedTo = key.key_id;
    owned.expired = this.grace === "0";
    real.stats.rotations += 1;
    model.keys.set(key.key_id, {
      side: this.side,
      name: owned.name,
      description: owned.description,
      revoked: false,
      expired: false,
      rotatedFrom: keyId,
      rotatedTo: null,
      plaintext: api_key,
      uses: 0,
    });
    model.order.push(key.key_id);
    model.events[this.side].push(`api_key.rotated ${keyId} ${SUBJECTS[this.subject]}`);
  }
  toString = () => `rotate(${this.side}, #${this.pick}, ${this.grace})`;
}

class Verify implements fc.AsyncCommand<Model, Real> {
  constructor(readonly side: Side, readonly pick: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const keyId = target(model, this.pick);
    const owned = model.keys.get(keyId);
    const outcome = await real.server.call("verify_api_key", { api_key: owned?.plaintext ?? NOBODYS_KEY, token: real.tokens[this.side][0]! });
    const answer = ok(outcome, "verify");
    if (owned?.side !== this.side) {
      // Another tenant's key is answered exactly like a key nobody has, and counts no use.
      if (owned) real.stats.crossTenantAttempts += 1;
      expect(answer).toEqual({ valid: false, code: "NOT_FOUND" });
      return;
    }
    const code = { active: "VALID", expired: "EXPIRED", revoked: "REVOKED" }[statusOf(owned)];
    expect({ valid: answer.valid, code: answer.code, key_id: answer.key?.key_id }).toEqual({ valid: code === "VALID", code, key_id: keyId });
    if (code === "VALID") {
      owned.uses += 1;
      real.stats.validChecks += 1;
    }
  }
  toString = () => `verify(${this.side}, #${this.pick})`;
}

class ListAudit implements fc.AsyncCommand<Model, Real> {
  /** `pick` null: the whole trail; else only events about that key. */
  constructor(readonly side: Side, readonly pick: number | null, readonly limit: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const keyId = this.pick === null ? undefined : target(model, this.pick);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const args: Record<string, unknown> = { limit: this.limit, token: real.tokens[this.side][READ_ONLY]! };
      if (keyId !== undefined) args.key_id = keyId;
      if (cursor !== null) args.cursor = cursor;
      const page = ok(await real.server.call("list_audit_events", args), "list_audit_events");
      seen.push(...page.events.map((event: { action: string; key_id: string; actor: string }) => `${event.action} ${event.key_id} ${event.actor}`));
      cursor = page.next_cursor;
    } while (cursor !== null);
    const owned = keyId === undefined ? undefined : model.keys.get(keyId);
    // About another tenant's key this tenant sees only its own denied attempts, exactly as for a
    // key nobody has: none of the owner's events.
    if (owned && owned.side !== this.side) real.stats.crossTenantAttempts += 1;
    const expected = model.events[this.side].filter((event) => keyId === undefined || event.split(" ")[1] === keyId);
    expect(seen).toEqual(expected.reverse());
  }
  toString = () => `list_audit_events(${this.side}, ${this.pick === null ? "all" : `#${this.pick}`}, ${this.limit})`;
}

const side = fc.constantFrom<Side>(0, 1);
const subject = fc.oneof({ arbitrary: fc.constantFrom(0, 1), weight: 5 }, { arbitrary: fc.constant(READ_ONLY), weight: 1 });
const pick = fc.integer({ min: -1, max: 1000 });
const name = fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 }).filter((s) => s.trim().length > 0);
const COMMANDS = [
  fc.tuple(side, subject, name, fc.option(fc.string({ maxLength: 30 }))).map(([s, u, n, d]) => new Create(s, u, n, d)),
  fc.tuple(side, pick).map(([s, p]) => new Get(s, p)),
  fc.tuple(side, subject, pick, name).map(([s, u, p, n]) => new Update(s, u, p, n)),
  fc.tuple(side, subject, pick).map(([s, u, p]) => new Revoke(s, u, p)),
  fc.tuple(side, fc.constantFrom(...STATUSES), fc.integer({ min: 1, max: 4 })).map(([s, st, l]) => new List(s, st, l)),
  fc.tuple(side, subject, pick, fc.constantFrom(...GRACES)).map(([s, u, p, g]) => new Rotate(s, u, p, g)),
  fc.tuple(side, pick).map(([s, p]) => new Verify(s, p)),
  fc.tuple(side, fc.option(pick), fc.integer({ min: 1, max: 4 })).map(([s, p, l]) => new ListAudit(s, p, l)),
];

/** A fresh, empty store behind a real server, and a way to read its tables behind the tools. */
interface Store {
  server: TestServer;
  /** The rows of one query, written in SQL both backends read alike. */
  rows(sql: string): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

/** One backend the property runs on: how many runs, and how each run gets a store of its own. */
interface Backend {
  name: string;
  /** The suite name for the figures. */
  figures: string;
  runs: number;
  timeoutMs: number;
  setup(): Promise<void>;
  open(env: Record<string, string>): Promise<Store>;
  teardown(): Promise<void>;
}

/** SQLite: an in-memory database per run. */
const sqlite: Backend = {
  name: "SQLite",
  figures: "fuzz-tenancy",
  runs: RUNS,
  timeoutMs: 60_000,
  setup: async () => {},
  async open(env) {
    const server = await startTestServer({ env });
    return { server, rows: async (sql) => server.db!.prepare(sql).all() as Record<string, unknown>[], close: () => server.close() };
  },
  teardown: async () => {},
};

/**
 * PostgreSQL: one database on the run's server, a schema of its own per run (the server's
 * connections name it in their search_path): as fresh as SQLite's
 * in-memory database, at a tenth of the cost of a database per run. Each run's tables are read
 * through a pool of the test's own.
 */
function postgres(): Backend {
  let url: string;
  let admin: pg.Pool;
  let schemas = 0;
  return {
    name: "PostgreSQL",
    figures: "fuzz-tenancy-postgres",
    runs: POSTGRES_RUNS,
    timeoutMs: 90_000,
    async setup() {
      url = await createTestDatabase();
      admin = createPool(url, { max: 2 });
    },
    async open(env) {
      const schema = `run_${schemas++}`;
      await admin.query(`CREATE SCHEMA ${schema}`);
      const runUrl = new URL(url);
      runUrl.searchParams.set("options", `-c search_path=${schema}`);
      // Migrated before the server starts (which finds nothing left to do), so the tables exist
      // to be read even when a run's commands never reached the store.
      const pool = createPool(runUrl.toString(), { max: 1 });
      await migratePostgres(pool).finally(() => pool.end());
      const server = await startTestServer({ env: { ...env, API_KEYS_MCP_DATABASE_URL: runUrl.toString() } });
      return {
        server,
        rows: async (sql) => {
          const client = await admin.connect();
          try {
            await client.query(`SET search_path TO ${schema}`);
            return (await client.query(sql)).rows as Record<string, unknown>[];
          } finally {
            await client.query("RESET search_path").catch(() => {});
            client.release();
          }
        },
        close: () => server.close(),
      };
    },
    teardown: async () => admin?.end(),
  };
}

for (const backend of [sqlite, postgres()]) {
  describe(`property on ${backend.name}: two tenants never see or change each other's keys (A5)`, () => {
    const tokens = new Map<string, string>();
    const stats = { runs: 0, commands: 0, crossTenantAttempts: 0, rotations: 0, validChecks: 0 };

    beforeAll(async () => {
      for (const tenant of TENANT_PAIRS.flat()) {
        for (const [i, sub] of SUBJECTS.entries()) tokens.set(`${tenant}|${sub}`, await merchantToken(tenant, sub, i === READ_ONLY ? "api_keys:read" : READ_WRITE));
      }
      await backend.setup();
    });
    afterAll(async () => {
      await backend.teardown();
      recordFigures(backend.figures, {
        runs: stats.runs,
        commands: stats.commands,
        cross_tenant_attempts: stats.crossTenantAttempts,
        rotations: stats.rotations,
        valid_checks: stats.validChecks,
        leaks: 0,
        seed: FUZZ_SEED,
      });
    });

    it("holds for random sequences of create, get, update, revoke, rotate, verify and both listings from both tenants", async () => {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...TENANT_PAIRS), fc.commands(COMMANDS, { maxCommands: MAX_COMMANDS, size: "max" }), async (pair, commands) => {
          const store = await backend.open({ API_KEYS_MCP_RATE_LIMIT_READ: "1000000", API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000" });
          const { server } = store;
          const real: Real = {
            server,
            tokens: [SUBJECTS.map((sub) => tokens.get(`${pair[0]}|${sub}`)!), SUBJECTS.map((sub) => tokens.get(`${pair[1]}|${sub}`)!)],
            stats: { crossTenantAttempts: 0, rotations: 0, validChecks: 0 },
          };
          try {
            const model: Model = { keys: new Map(), order: [], events: [[], []], denials: [0, 0] };
            await fc.asyncModelRun(() => ({ model, real }), commands);
            // Behind the tools: every row and every audit event belongs to the tenant that made it,
            // a rotation's two keys both to the rotating tenant; counted uses, once written, too.
            await server.flushUsage();
            const stored = await store.rows(
              `SELECT key_id, tenant_id, name, CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END AS revoked, rotated_from, rotated_to,
                 COALESCE(u.usage_count, 0) AS usage_count
               FROM api_keys k LEFT JOIN key_usage u ON u.key_seq = k.seq ORDER BY seq`,
            );
            expect(stored).toEqual(
              model.order.map((id) => {
                const key = model.keys.get(id)!;
                return {
                  key_id: id,
                  tenant_id: pair[key.side],
                  name: key.name,
                  revoked: key.revoked ? 1 : 0,
                  rotated_from: key.rotatedFrom,
                  rotated_to: key.rotatedTo,
                  usage_count: key.uses,
                };
              }),
            );
            // Each tenant's trail, denials included, exactly as the model has it; every change on a
            // key in the key's own tenant.
            const events = (await store.rows("SELECT action, key_id, actor, tenant_id FROM audit_events ORDER BY seq")) as {
              action: string;
              key_id: string | null;
              actor: string;
              tenant_id: string;
            }[];
            for (const tenant of [0, 1] as const) {
              const trail = events.filter((event) => event.tenant_id === pair[tenant]).map((event) => `${event.action} ${event.key_id} ${event.actor}`);
              expect(trail).toEqual(model.events[tenant]);
            }
            expect(events).toHaveLength(model.events[0].length + model.events[1].length);
            stats.runs += 1;
            stats.commands += [...commands].length;
            stats.crossTenantAttempts += real.stats.crossTenantAttempts;
            stats.rotations += real.stats.rotations;
            stats.validChecks += real.stats.validChecks;
          } finally {
            await store.close();
          }
        }),
        fuzzParameters(backend.runs),
      );
      // Enough of what matters happened: at 200 runs, at least 100 attempts on the other
      // tenant's keys, 50 rotations and 50 VALID verifications (scaled to the runs made).
      expect(stats.crossTenantAttempts).toBeGreaterThan(stats.runs / 2);
      expect(stats.rotations).toBeGreaterThan(stats.runs / 4);
      expect(stats.validChecks).toBeGreaterThan(stats.runs / 4);
    }, fuzzTimeout(backend.timeoutMs));
  });
}
