import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordFigures } from "../helpers/figures.js";
import { FUZZ_SEED, fuzzParameters, fuzzTimeout } from "../helpers/fuzz.js";
import { startTestServer, type CallOutcome, type TestServer } from "../helpers/server.js";
import { merchantToken } from "../helpers/tokens.js";

const RUNS = 200;
const MAX_COMMANDS = 40;

// Pairs of tenants that differ by as little as possible: case, a trailing NUL or space, a LIKE
// wildcard, Unicode normalisation. The store compares tenant ids exactly; none of these may meet.
const TENANT_PAIRS: [string, string][] = [
  ["merchant_a", "merchant_b"],
  ["merchant_a", "MERCHANT_A"],
  ["acme", "acme\u0000"],
  ["acme", "acme "],
  ["m_1", "m_%"],
  ["caf\u00e9", "cafe\u0301"],
];
const SUBJECTS = ["user_1", "user_2"];
const STATUSES = [undefined, "active", "revoked", "all"] as const;

type Side = 0 | 1;
interface ModelKey {
  side: Side;
  name: string;
  description: string | null;
  revoked: boolean;
}
interface Model {
  keys: Map<string, ModelKey>;
  /** Key ids in creation order. */
  order: string[];
}
interface Real {
  server: TestServer;
  tokens: [string[], string[]];
  stats: { commands: number; crossTenantAttempts: number };
}

/** A key the command aims at: one that exists (either tenant's), or an id nobody has. */
function target(model: Model, pick: number): string {
  return pick < 0 || model.order.length === 0 ? "key_00000000000000Nobody" : model.order[pick % model.order.length]!;
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
    const data = ok(await real.server.call("create_api_key", args), "create");
    expect(data.key.created_by).toBe(SUBJECTS[this.subject]);
    model.keys.set(data.key.key_id, { side: this.side, name: this.name.trim(), description: this.description, revoked: false });
    model.order.push(data.key.key_id);
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
    expect({ name: key.name, description: key.description, revoked: key.status === "revoked" }).toEqual({
      name: owned.name,
      description: owned.description,
      revoked: owned.revoked,
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
    if (owned?.side !== this.side) {
      if (owned) real.stats.crossTenantAttempts += 1;
      return expectNotFound(outcome, keyId);
    }
    if (owned.revoked) {
      expect(outcome.ok ? "OK" : outcome.code).toBe("ERR_CONFLICT");
      return;
    }
    expect(ok(outcome, "update").key.name).toBe(this.name.trim());
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
    if (owned?.side !== this.side) {
      if (owned) real.stats.crossTenantAttempts += 1;
      return expectNotFound(outcome, keyId);
    }
    expect(ok(outcome, "revoke").key.status).toBe("revoked");
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
      seen.push(...page.keys.map((key: { key_id: string }) => key.key_id));
      cursor = page.next_cursor;
    } while (cursor !== null);
    const wanted = (key: ModelKey) =>
      key.side === this.side && (this.status === "all" || (this.status === "revoked" ? key.revoked : !key.revoked));
    expect(seen).toEqual(model.order.filter((id) => wanted(model.keys.get(id)!)).reverse());
  }
  toString = () => `list(${this.side}, ${this.status ?? "default"}, ${this.limit})`;
}

const side = fc.constantFrom<Side>(0, 1);
const subject = fc.constantFrom(0, 1);
const pick = fc.integer({ min: -1, max: 1000 });
const name = fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 }).filter((s) => s.trim().length > 0);
const COMMANDS = [
  fc.tuple(side, subject, name, fc.option(fc.string({ maxLength: 30 }))).map(([s, u, n, d]) => new Create(s, u, n, d)),
  fc.tuple(side, pick).map(([s, p]) => new Get(s, p)),
  fc.tuple(side, subject, pick, name).map(([s, u, p, n]) => new Update(s, u, p, n)),
  fc.tuple(side, subject, pick).map(([s, u, p]) => new Revoke(s, u, p)),
  fc.tuple(side, fc.constantFrom(...STATUSES), fc.integer({ min: 1, max: 4 })).map(([s, st, l]) => new List(s, st, l)),
];

describe("property: two tenants never see or change each other's keys (A5)", () => {
  const tokens = new Map<string, string>();
  const stats = { runs: 0, commands: 0, crossTenantAttempts: 0 };

  beforeAll(async () => {
    for (const tenant of TENANT_PAIRS.flat()) {
      for (const sub of SUBJECTS) tokens.set(`${tenant}|${sub}`, await merchantToken(tenant, sub));
    }
  });
  afterAll(() => {
    recordFigures("fuzz-tenancy", { runs: stats.runs, commands: stats.commands, cross_tenant_attempts: stats.crossTenantAttempts, leaks: 0, seed: FUZZ_SEED });
  });

  it("holds for random sequences of create, get, update, revoke and list from both tenants", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...TENANT_PAIRS), fc.commands(COMMANDS, { maxCommands: MAX_COMMANDS, size: "max" }), async (pair, commands) => {
        const server = await startTestServer({
          env: { API_KEYS_MCP_RATE_LIMIT_READ: "1000000", API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000" },
        });
        const real: Real = {
          server,
          tokens: [SUBJECTS.map((sub) => tokens.get(`${pair[0]}|${sub}`)!), SUBJECTS.map((sub) => tokens.get(`${pair[1]}|${sub}`)!)],
          stats: { commands: 0, crossTenantAttempts: 0 },
        };
        try {
          const model: Model = { keys: new Map(), order: [] };
          await fc.asyncModelRun(() => ({ model, real }), commands);
          // Behind the tools: every row and every audit event belongs to the tenant that made it.
          const stored = server.db!.prepare("SELECT key_id, tenant_id, name, revoked_at IS NOT NULL AS revoked FROM api_keys ORDER BY seq").all();
          expect(stored).toEqual(
            model.order.map((id) => {
              const key = model.keys.get(id)!;
              return { key_id: id, tenant_id: pair[key.side], name: key.name, revoked: key.revoked ? 1 : 0 };
            }),
          );
          const events = server.db!.prepare("SELECT key_id, tenant_id FROM audit_events WHERE action <> 'auth.denied'").all() as { key_id: string; tenant_id: string }[];
          for (const event of events) expect(event.tenant_id).toBe(pair[model.keys.get(event.key_id)!.side]);
          stats.runs += 1;
          stats.commands += [...commands].length;
          stats.crossTenantAttempts += real.stats.crossTenantAttempts;
        } finally {
          await server.close();
        }
      }),
      fuzzParameters(RUNS),
    );
    expect(stats.crossTenantAttempts).toBeGreaterThan(100);
  }, fuzzTimeout(60_000));
});
