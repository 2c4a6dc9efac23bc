import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AppError } from "../../src/errors.js";
import type { Environment, KeyType } from "../../src/keys/format.js";
import { newKeyId } from "../../src/keys/ids.js";
import { issueApiKey } from "../../src/keys/secret.js";
import { GENESIS_HASH, type ChainVerification } from "../../src/audit/chain.js";
import type { Actor, ClientInfo } from "../../src/audit/events.js";
import { fingerprintArguments, IDEMPOTENCY_SWEEP_LIMIT, IDEMPOTENCY_TTL_MS, judgeRetry, type IdempotencyClaim } from "../../src/keys/idempotency.js";
import type { KeyRecord, NewKey, Rotation } from "../../src/keys/record.js";
import type { CreateResult, KeyRepository, ListKeysQuery } from "../../src/store/repository.js";
import type { TestClock } from "./server.js";

/** 2030-01-01T00:00:00.000Z: a fixed start, so every timestamp below is exact. */
export const T0 = Date.UTC(2030, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();

const KEY_RECORD_FIELDS = [
  "keyId",
  "tenantId",
  "name",
  "description",
  "type",
  "environment",
  "prefix",
  "createdAt",
  "updatedAt",
  "expiresAt",
  "revokedAt",
  "lastUsedAt",
  "usageCount",
  "createdBy",
  "scopes",
  "rotatedFrom",
  "rotatedTo",
] as const;

/** The KeyRecord fields of a record, whatever else a backend attaches. */
function record(value: KeyRecord | undefined): KeyRecord | undefined {
  if (value === undefined) return undefined;
  return Object.fromEntries(KEY_RECORD_FIELDS.map((field) => [field, value[field]])) as unknown as KeyRecord;
}

export interface AuditRow {
  eventId: string;
  occurredAt: number;
  action: string;
  outcome: string;
  tenantId: string | null;
  actor: string | null;
  keyId: string | null;
  tool: string | null;
  reason: string | null;
  changes: Record<string, { from: unknown; to: unknown }> | null;
  /** The MCP client the call came through, or null. */
  client: ClientInfo | null;
  /** S4: the hash of the row before (GENESIS_HASH for the first), and this row's own. */
  prevHash: string;
  hash: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Each row's prevHash is the hash of the row before it, from the genesis hash on (S4). */
function expectChained(rows: AuditRow[]): void {
  expect(rows.map((row) => row.prevHash)).toEqual([GENESIS_HASH, ...rows.slice(0, -1).map((row) => row.hash)]);
  for (const row of rows) expect(row.hash).toMatch(SHA256_HEX);
  expect(new Set(rows.map((row) => row.hash)).size).toBe(rows.length);
}

/**
 * What the contract needs from a backend besides the repository: a clock it can move, a look
 * at the stored audit rows and key count, and a way to make the database itself refuse a write
 * (so atomicity is tested where it lives, inside the backend's transaction).
 */
export interface ContractFixture {
  repo: KeyRepository;
  clock: TestClock;
  /** Audit rows in the order they were written, `changes` parsed. */
  auditRows(): Promise<AuditRow[]>;
  /** Everything stored in the audit table, as text, to search for secrets. */
  auditDump(): Promise<string>;
  /** Rows in the keys table, of every tenant and status. */
  keyCount(): Promise<number>;
  /** Makes the database refuse every write of that kind until the returned undo is called. */
  refuse(write: "audit insert" | "key insert" | "key update" | "idempotency insert"): Promise<() => Promise<void>>;
  /** Another repository on the same store, as a second process or instance would open it (closed by close()). */
  another(): Promise<KeyRepository>;
  /** The backend's own check of the whole audit chain. */
  verifyChain(): Promise<ChainVerification>;
  close(): Promise<void>;
}

const ALICE: Actor = { tenantId: "merchant_a", subject: "alice", client: null };
const MALLORY: Actor = { tenantId: "merchant_b", subject: "mallory", client: null };

interface KeyOptions {
  name?: string;
  description?: string | null;
  type?: KeyType;
  environment?: Environment;
  expiresAt?: number | null;
  scopes?: string[];
}

/** A new key as the create tool builds it: real id, real plaintext hashed, real prefix. */
function newKey(options: KeyOptions = {}): NewKey {
  const type = options.type ?? "secret";
  const environment = options.environment ?? "test";
  const issued = issueApiKey(type, environment);
  return {
    keyId: newKeyId(),
    name: options.name ?? "checkout",
    description: options.description === undefined ? null : options.description,
    type,
    environment,
    prefix: issued.prefix,
    hash: issued.hash,
    hashVersion: issued.hashVersion,
    expiresAt: options.expiresAt === undefined ? null : options.expiresAt,
    scopes: options.scopes ?? [],
  };
}

/** A fresh secret for `rotateKey`, minted as the rotate tool mints it. */
function newRotation(type: KeyType = "secret", environment: Environment = "test", graceMs = 0): Rotation {
  const issued = issueApiKey(type, environment);
  return { keyId: newKeyId(), prefix: issued.prefix, hash: issued.hash, hashVersion: issued.hashVersion, graceMs };
}

/** The key a create made; fails the test when it made none. */
function made(result: CreateResult): KeyRecord {
  if (!result.ok) throw new Error(`expected a new key, got ${result.reason}`);
  return result.key;
}

/**
 * The KeyRepository contract, backend-neutral: every backend's test file runs this same suite
 * with a fixture of its own (test/store/repository.test.ts for SQLite,
 * test/store/postgres/repository.test.ts for PostgreSQL).
 */
/** What a contract test may ask of a backend's fixture. */
export interface FixtureOptions {
  /** Index entries a filtered page looks at, at most: small, so that windows show with few keys. */
  listWindowRows?: number;
}

export function describeKeyRepositoryContract(backend: string, setup: (options?: FixtureOptions) => Promise<ContractFixture>): void {
  describe(`KeyRepository contract: ${backend}`, () => {
    let f: ContractFixture;
    let repo: KeyRepository;
    let clock: TestClock;
    beforeEach(async () => {
      f = await setup();
      repo = f.repo;
      clock = f.clock;
    });
    afterEach(() => f.close());

    const create = async (actor: Actor = ALICE, options: KeyOptions = {}) => made(await repo.createKey(actor, newKey(options), clock()));
    const listIds = async (tenant: string, query: Partial<ListKeysQuery> = {}) =>
      (await repo.listKeys(tenant, { now: clock(), limit: 100, ...query })).keys.map((k) => k.keyId);

    describe("create and get", () => {
      it("stores the key and returns it as a record of the actor's tenant", async () => {
        const input = newKey({
          name: "payments",
          description: "server side",
          type: "publishable",
          environment: "live",
          expiresAt: T0 + 5000,
          scopes: ["payments:read", "refunds:*"],
        });
        const created = made(await repo.createKey(ALICE, input, clock()));
        const expected: KeyRecord = {
          keyId: input.keyId,
          tenantId: "merchant_a",
          name: "payments",
          description: "server side",
          type: "publishable",
          environment: "live",
          prefix: input.prefix,
          createdAt: T0,
          updatedAt: T0,
          expiresAt: T0 + 5000,
          revokedAt: null,
          lastUsedAt: null,
          usageCount: 0,
          createdBy: "alice",
          scopes: ["payments:read", "refunds:*"],
          rotatedFrom: null,
          rotatedTo: null,
        };
        expect(record(created)).toEqual(expected);
        expect(record(await repo.getKey("merchant_a", input.keyId))).toEqual(expected);
        expect(await f.keyCount()).toBe(1);
      });

      it("answers undefined for an unknown key id", async () => {
        await create();
        expect(await repo.getKey("merchant_a", newKeyId())).toBeUndefined();
      });

      it("writes exactly one api_key.created audit row holding the new values, never the hash", async () => {
        const input = newKey({ name: "payments", description: "d", expiresAt: T0 + 1000, scopes: ["payments:read"] });
        await repo.createKey(ALICE, input, clock());
        const rows = await f.auditRows();
        expect(rows).toEqual([
          {
            eventId: expect.stringMatching(/^evt_[0-9A-Za-z]{20}$/),
            occurredAt: T0,
            action: "api_key.created",
            outcome: "success",
            tenantId: "merchant_a",
            actor: "alice",
            keyId: input.keyId,
            tool: null,
            reason: null,
            changes: {
              name: { from: null, to: "payments" },
              description: { from: null, to: "d" },
              type: { from: null, to: "secret" },
              environment: { from: null, to: "test" },
              prefix: { from: null, to: input.prefix },
              expires_at: { from: null, to: iso(T0 + 1000) },
              scopes: { from: null, to: ["payments:read"] },
            },
            client: null,
            prevHash: GENESIS_HASH,
            hash: expect.stringMatching(SHA256_HEX),
          },
        ]);
        expect(await f.auditDump()).not.toContain(input.hash);
      });

      it("refuses a duplicate hash or key id and then leaves neither row nor audit", async () => {
        const first = newKey();
        await repo.createKey(ALICE, first, clock());
        await expect(repo.createKey(ALICE, { ...newKey(), hash: first.hash }, clock())).rejects.toThrow();
        await expect(repo.createKey(MALLORY, { ...newKey(), keyId: first.keyId }, clock())).rejects.toThrow();
        expect(await f.keyCount()).toBe(1);
        expect((await f.auditRows()).map((r) => r.action)).toEqual(["api_key.created"]);
      });
    });

    describe("tenant scoping (A5)", () => {
      it("answers another tenant's key exactly like a missing one, and leaves it untouched", async () => {
        const key = await create(ALICE, { name: "alice's" });
        const before = record(await repo.getKey("merchant_a", key.keyId));
        const audit = await f.auditRows();

        expect(await repo.getKey("merchant_b", key.keyId)).toBeUndefined();
        expect(await listIds("merchant_b", { status: "all" })).toEqual([]);
        expect(await repo.updateKey(MALLORY, key.keyId, { name: "pwned", description: "x", expiresAt: T0 + 1 }, clock())).toEqual({ ok: false, reason: "NOT_FOUND" });
        expect(await repo.revokeKey(MALLORY, key.keyId, clock())).toEqual({ ok: false, reason: "NOT_FOUND" });
        const rotation = newRotation();
        expect(await repo.rotateKey(MALLORY, key.keyId, rotation, clock())).toEqual({ ok: false, reason: "NOT_FOUND" });
        expect((await repo.listAuditEvents("merchant_b", { limit: 100 })).events).toEqual([]);

        expect(record(await repo.getKey("merchant_a", key.keyId))).toEqual(before);
        expect(await repo.getKey("merchant_b", rotation.keyId)).toBeUndefined();
        expect(await f.keyCount()).toBe(1);
        expect(await f.auditRows()).toEqual(audit);
      });

      it("lists only the caller's tenant", async () => {
        const a1 = await create(ALICE);
        const b1 = await create(MALLORY);
        const a2 = await create(ALICE);
        expect(await listIds("merchant_a")).toEqual([a2.keyId, a1.keyId]);
        expect(await listIds("merchant_b")).toEqual([b1.keyId]);
        expect(await listIds("merchant_c")).toEqual([]);
      });

      it("refuses another tenant's cursor, for keys and for audit events, and changes nothing", async () => {
        for (let i = 0; i < 4; i++) {
          await create(ALICE);
          await create(MALLORY);
        }
        const keysCursor = (await repo.listKeys("merchant_b", { now: clock(), limit: 2 })).nextCursor!;
        const eventsCursor = (await repo.listAuditEvents("merchant_b", { limit: 2 })).nextCursor!;
        const rowsBefore = await f.auditRows();
        await expect(repo.listKeys("merchant_a", { now: clock(), limit: 100, cursor: keysCursor })).rejects.toMatchObject({ code: "ERR_VALIDATION" });
        await expect(repo.listAuditEvents("merchant_a", { limit: 100, cursor: eventsCursor })).rejects.toMatchObject({ code: "ERR_VALIDATION" });
        expect(await f.auditRows()).toEqual(rowsBefore);
      });

      it("issues cursors that reveal nothing: two cursors the same distance apart look unrelated, whatever other tenants wrote between", async () => {
        for (let i = 0; i < 3; i++) await create(ALICE);
        const first = (await repo.listKeys("merchant_a", { now: clock(), limit: 1 })).nextCursor!;
        for (let i = 0; i < 50; i++) await create(MALLORY);
        for (let i = 0; i < 3; i++) await create(ALICE);
        const second = (await repo.listKeys("merchant_a", { now: clock(), limit: 1 })).nextCursor!;
        const again = (await repo.listKeys("merchant_a", { now: clock(), limit: 1 })).nextCursor!;
        // The same position sealed twice gives two different cursors (a fresh nonce each time), so
        // no cursor can be compared with another, or its position read off it.
        expect(again).not.toBe(second);
        for (const cursor of [first, second, again]) expect(cursor).toMatch(/^[A-Za-z0-9_-]{48}$/);
        // Both still work.
        expect((await repo.listKeys("merchant_a", { now: clock(), limit: 10, cursor: first })).keys).toHaveLength(2);
        expect((await repo.listKeys("merchant_a", { now: clock(), limit: 10, cursor: again })).keys).toHaveLength(5);
      });
    });

    describe("list order and pagination (T2)", () => {
      it("lists in exact reverse creation order when every key shares one millisecond", async () => {
        const ids: string[] = [];
        for (let i = 0; i < 40; i++) ids.push((await create(i % 3 ? ALICE : MALLORY)).keyId);
        const alices = ids.filter((_, i) => i % 3 !== 0);
        expect(await listIds("merchant_a")).toEqual([...alices].reverse());
        expect(clock()).toBe(T0);
      });

      it("walks several pages with no duplicate and no gap, and ends with a null cursor", async () => {
        const ids: string[] = [];
        for (let i = 0; i < 23; i++) ids.push((await create()).keyId);
        const pages: string[][] = [];
        let cursor: string | undefined;
        for (;;) {
          const page = await repo.listKeys("merchant_a", { now: clock(), limit: 5, ...(cursor === undefined ? {} : { cursor }) });
          pages.push(page.keys.map((k) => k.keyId));
          if (page.nextCursor === null) break;
          cursor = page.nextCursor;
          expect(pages.length).toBeLessThan(10);
        }
        expect(pages.map((p) => p.length)).toEqual([5, 5, 5, 5, 3]);
        expect(pages.flat()).toEqual([...ids].reverse());
      });

      it("returns no empty trailing page when the last page is exactly full", async () => {
        for (let i = 0; i < 6; i++) await create();
        const first = await repo.listKeys("merchant_a", { now: clock(), limit: 3 });
        expect(first.keys).toHaveLength(3);
        expect(first.nextCursor).toEqual(expect.any(String));
        const second = await repo.listKeys("merchant_a", { now: clock(), limit: 3, cursor: first.nextCursor! });
        expect(second.keys).toHaveLength(3);
        expect(second.nextCursor).toBeNull();
      });

      it("keeps its place when keys are created between pages", async () => {
        const ids: string[] = [];
        for (let i = 0; i < 6; i++) ids.push((await create()).keyId);
        const first = await repo.listKeys("merchant_a", { now: clock(), limit: 3 });
        await create();
        await create();
        const second = await repo.listKeys("merchant_a", { now: clock(), limit: 3, cursor: first.nextCursor! });
        expect(first.keys.map((k) => k.keyId)).toEqual(ids.slice(3).reverse());
        expect(second.keys.map((k) => k.keyId)).toEqual(ids.slice(0, 3).reverse());
        expect(second.nextCursor).toBeNull();
      });

      it("paginates a filtered list across pages", async () => {
        const live: string[] = [];
        for (let i = 0; i < 14; i++) {
          const key = await create(ALICE, { environment: i % 2 ? "live" : "test" });
          if (i % 2) live.push(key.keyId);
        }
        const seen: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await repo.listKeys("merchant_a", { now: clock(), limit: 2, environment: "live", ...(cursor === undefined ? {} : { cursor }) });
          seen.push(...page.keys.map((k) => k.keyId));
          cursor = page.nextCursor ?? undefined;
        } while (cursor !== undefined);
        expect(seen).toEqual([...live].reverse());
      });

      it.each(["garbage", "", "azE", Buffer.from("k1.x").toString("base64url"), Buffer.from("k1.5").toString("base64url"), "A".repeat(48), "audit listing"])(
        "refuses an invalid cursor (#%#) with ERR_VALIDATION",
        async (given) => {
          await create();
          await create();
          const cursor = given === "audit listing" ? (await repo.listAuditEvents("merchant_a", { limit: 1 })).nextCursor! : given;
          const attempt = repo.listKeys("merchant_a", { now: clock(), limit: 5, cursor });
          await expect(attempt).rejects.toBeInstanceOf(AppError);
          await expect(attempt).rejects.toMatchObject({ code: "ERR_VALIDATION" });
        },
      );
    });

    describe("filters (T2, K6)", () => {
      it("applies status filters, deriving expiry from the clock", async () => {
        const forever = await create(ALICE, { name: "forever" });
        const soon = await create(ALICE, { name: "soon", expiresAt: T0 + 1000 });
        const revoked = await create(ALICE, { name: "revoked" });
        await repo.revokeKey(ALICE, revoked.keyId, clock());
        const revokedAndExpired = await create(ALICE, { name: "revoked and expired", expiresAt: T0 + 10 });
        await repo.revokeKey(ALICE, revokedAndExpired.keyId, clock());

        expect(await listIds("merchant_a")).toEqual([soon.keyId, forever.keyId]);
        expect(await listIds("merchant_a", { status: "active" })).toEqual([soon.keyId, forever.keyId]);
        expect(await listIds("merchant_a", { status: "expired" })).toEqual([]);
        expect(await listIds("merchant_a", { status: "revoked" })).toEqual([revokedAndExpired.keyId, revoked.keyId]);
        expect(await listIds("merchant_a", { status: "all" })).toEqual([revokedAndExpired.keyId, revoked.keyId, soon.keyId, forever.keyId]);

        clock.set(T0 + 999);
        expect(await listIds("merchant_a", { status: "expired" })).toEqual([]);

        clock.set(T0 + 1000); // expires_at <= now: expired at that very millisecond
        expect(await listIds("merchant_a")).toEqual([soon.keyId, forever.keyId]);
        expect(await listIds("merchant_a", { status: "active" })).toEqual([forever.keyId]);
        expect(await listIds("merchant_a", { status: "expired" })).toEqual([soon.keyId]);
        expect(await listIds("merchant_a", { status: "revoked" })).toEqual([revokedAndExpired.keyId, revoked.keyId]);
      });

      it("filters by environment and type, alone and together", async () => {
        const made: Record<string, string> = {};
        for (const type of ["secret", "publishable"] as const) {
          for (const environment of ["test", "live"] as const) {
            made[`${type}/${environment}`] = (await create(ALICE, { type, environment })).keyId;
          }
        }
        await create(MALLORY, { type: "secret", environment: "live" });
        expect(await listIds("merchant_a", { environment: "live" })).toEqual([made["publishable/live"], made["secret/live"]]);
        expect(await listIds("merchant_a", { type: "publishable" })).toEqual([made["publishable/live"], made["publishable/test"]]);
        expect(await listIds("merchant_a", { type: "secret", environment: "test" })).toEqual([made["secret/test"]]);
        await repo.revokeKey(ALICE, made["secret/live"]!, clock());
        expect(await listIds("merchant_a", { environment: "live" })).toEqual([made["publishable/live"]]);
        expect(await listIds("merchant_a", { environment: "live", status: "revoked" })).toEqual([made["secret/live"]]);
      });
    });

    describe("bounded listings: a filtered page looks at a window of index entries, never the whole tenant", () => {
      /** Every page of a listing, until next_cursor is null. */
      async function walk<T>(page: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor: string | null }>): Promise<T[][]> {
        const pages: T[][] = [];
        let cursor: string | undefined;
        do {
          const next = await page(cursor);
          pages.push(next.items);
          cursor = next.nextCursor ?? undefined;
          expect(pages.length).toBeLessThan(100);
        } while (cursor !== undefined);
        return pages;
      }

      it("walks a rare filter to the end across short pages, with no key lost or repeated", async () => {
        const g = await setup({ listWindowRows: 4 });
        try {
          const keys: KeyRecord[] = [];
          for (let i = 0; i < 30; i++) {
            keys.push(made(await g.repo.createKey(ALICE, newKey({ environment: i % 5 === 0 ? "live" : "test", expiresAt: i % 4 === 0 ? T0 + 10 : null }), T0)));
          }
          await g.repo.revokeKey(ALICE, keys[12]!.keyId, T0);
          const now = T0 + 100;
          // Live and expired: two keys of thirty, found by walking the environment index and
          // checking expiry within windows of four entries.
          const expected = [keys[20]!.keyId, keys[0]!.keyId];
          const pages = await walk(async (cursor) => {
            const page = await g.repo.listKeys("merchant_a", { now, limit: 10, environment: "live", status: "expired", ...(cursor ? { cursor } : {}) });
            return { items: page.keys.map((k) => k.keyId), nextCursor: page.nextCursor };
          });
          expect(pages.flat()).toEqual(expected);

          // Expired keys in the whole tenant: the unrevoked index, expiry checked row by row.
          const expired = keys.filter((k, i) => i % 4 === 0 && i !== 12).map((k) => k.keyId).reverse();
          const expiredPages = await walk(async (cursor) => {
            const page = await g.repo.listKeys("merchant_a", { now, limit: 2, status: "expired", ...(cursor ? { cursor } : {}) });
            return { items: page.keys.map((k) => k.keyId), nextCursor: page.nextCursor };
          });
          expect(expiredPages.flat()).toEqual(expired);
          // Some page came back short with more to come: the window, not the limit, ended it.
          expect(expiredPages.slice(0, -1).some((page) => page.length < 2)).toBe(true);
        } finally {
          await g.close();
        }
      });

      it("answers a filter nothing matches with an empty first page and a cursor, not a scan of every key", async () => {
        const g = await setup({ listWindowRows: 4 });
        try {
          for (let i = 0; i < 12; i++) await g.repo.createKey(ALICE, newKey({ expiresAt: null }), T0);
          const first = await g.repo.listKeys("merchant_a", { now: T0, limit: 20, status: "expired" });
          expect(first.keys).toEqual([]);
          expect(first.nextCursor).not.toBeNull();
          const pages = await walk(async (cursor) => {
            const page = await g.repo.listKeys("merchant_a", { now: T0, limit: 20, status: "expired", ...(cursor ? { cursor } : {}) });
            return { items: page.keys, nextCursor: page.nextCursor };
          });
          expect(pages.flat()).toEqual([]);
          expect(pages.length).toBe(3);
          // An index answers "revoked" alone: none revoked is one empty page, at once.
          expect(await g.repo.listKeys("merchant_a", { now: T0, limit: 20, status: "revoked" })).toEqual({ keys: [], nextCursor: null });
        } finally {
          await g.close();
        }
      });

      it("walks one key's events in windows too, and another tenant's key id finds nothing", async () => {
        const g = await setup({ listWindowRows: 4 });
        try {
          const key = made(await g.repo.createKey(ALICE, newKey(), T0));
          for (let i = 0; i < 9; i++) await g.repo.updateKey(ALICE, key.keyId, { name: `name ${i}` }, T0 + 1 + i);
          const events = await walk(async (cursor) => {
            const page = await g.repo.listAuditEvents("merchant_a", { limit: 3, keyId: key.keyId, ...(cursor ? { cursor } : {}) });
            return { items: page.events.map((e) => e.occurredAt), nextCursor: page.nextCursor };
          });
          expect(events.flat()).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((i) => T0 + i));
          const foreign = await walk(async (cursor) => {
            const page = await g.repo.listAuditEvents("merchant_b", { limit: 3, keyId: key.keyId, ...(cursor ? { cursor } : {}) });
            return { items: page.events, nextCursor: page.nextCursor };
          });
          expect(foreign.flat()).toEqual([]);
        } finally {
          await g.close();
        }
      });

      it("answers a since in the future with an empty page and no cursor", async () => {
        for (let i = 0; i < 5; i++) await create();
        expect(await repo.listAuditEvents("merchant_a", { limit: 20, since: Date.UTC(2099, 0, 1) })).toEqual({ events: [], nextCursor: null });
        expect((await repo.listAuditEvents("merchant_a", { limit: 20, since: T0 })).events).toHaveLength(5);
      });

      it("lists audit events newest first by time, then by their place in the log", async () => {
        const key = await create();
        await repo.updateKey(ALICE, key.keyId, { name: "later" }, T0 + 50);
        // Written after, but stamped earlier (a call that read the clock first and committed last).
        await repo.updateKey(ALICE, key.keyId, { name: "earlier" }, T0 + 20);
        const events = (await repo.listAuditEvents("merchant_a", { limit: 20 })).events;
        expect(events.map((e) => [e.action, e.occurredAt])).toEqual([
          ["api_key.updated", T0 + 50],
          ["api_key.updated", T0 + 20],
          ["api_key.created", T0],
        ]);
      });
    });

    describe("two repositories on one store", () => {
      it("append to one audit chain when they write at once, and see each other's keys", async () => {
        const second = await f.another();
        const writes: Promise<unknown>[] = [];
        for (let i = 0; i < 40; i++) {
          writes.push(repo.createKey(ALICE, newKey({ name: `first ${i}` }), T0 + i));
          writes.push(second.createKey(MALLORY, newKey({ name: `second ${i}` }), T0 + i));
        }
        writes.push(repo.recordDenial({ at: T0, tool: "create_api_key", reason: "ERR_FORBIDDEN", tenantId: "merchant_a", actor: "rita", keyId: null }));
        writes.push(second.recordDenial({ at: T0, tool: "create_api_key", reason: "ERR_AUTH_INVALID", tenantId: null, actor: null, keyId: null }));
        await Promise.all(writes);
        const rows = await f.auditRows();
        expect(rows).toHaveLength(82);
        expectChained(rows);
        expect(await f.verifyChain()).toMatchObject({ ok: true, rows: 82 });
        expect((await second.listKeys("merchant_a", { now: T0 + 100, limit: 100 })).keys).toHaveLength(40);
        expect((await repo.listKeys("merchant_b", { now: T0 + 100, limit: 100 })).keys).toHaveLength(40);
      });

      it("add their counted uses, never overwrite each other's", async () => {
        const second = await f.another();
        const input = newKey();
        await repo.createKey(ALICE, input, T0);
        for (let i = 0; i < 3; i++) repo.recordUsage((await repo.findKeyByHash(input.hash))!, T0 + 10);
        for (let i = 0; i < 5; i++) second.recordUsage((await second.findKeyByHash(input.hash))!, T0 + 20);
        await Promise.all([repo.flushUsage(), second.flushUsage()]);
        expect(await repo.getKey("merchant_a", input.keyId)).toMatchObject({ usageCount: 8, lastUsedAt: T0 + 20 });
        expect(await second.getKey("merchant_a", input.keyId)).toMatchObject({ usageCount: 8, lastUsedAt: T0 + 20 });
      });
    });

    describe("usage counting", () => {
      it("shows this repository's own uses at once, before they are written, and counts each exactly once", async () => {
        const input = newKey();
        await repo.createKey(ALICE, input, clock());
        const found = (await repo.findKeyByHash(input.hash))!;
        repo.recordUsage(found, T0 + 10);
        repo.recordUsage(found, T0 + 20);
        expect(await repo.getKey("merchant_a", input.keyId)).toMatchObject({ usageCount: 2, lastUsedAt: T0 + 20 });
        await repo.flushUsage();
        expect(await repo.getKey("merchant_a", input.keyId)).toMatchObject({ usageCount: 2, lastUsedAt: T0 + 20 });
        repo.recordUsage((await repo.findKeyByHash(input.hash))!, T0 + 15);
        await repo.flushUsage();
        // Added, never overwritten; the latest use stays the latest.
        expect(await repo.getKey("merchant_a", input.keyId)).toMatchObject({ usageCount: 3, lastUsedAt: T0 + 20 });
        expect((await repo.listKeys("merchant_a", { now: clock(), limit: 5 })).keys[0]).toMatchObject({ usageCount: 3 });
      });
    });

    describe("a key stopped by rotation stays stopped", () => {
      it("refuses a later expiry for a rotated key, allows an earlier one and other changes", async () => {
        const old = await create(ALICE, { expiresAt: T0 + 86_400_000 });
        const rotation = { ...newRotation(), graceMs: 3_600_000 };
        const rotated = await repo.rotateKey(ALICE, old.keyId, rotation, T0);
        expect(rotated.ok).toBe(true);
        const retiresAt = T0 + 3_600_000;
        const eventsBefore = (await f.auditRows()).length;
        for (const expiresAt of [null, T0 + 86_400_000, retiresAt + 1]) {
          expect(await repo.updateKey(ALICE, old.keyId, { expiresAt }, T0 + 1)).toEqual({ ok: false, reason: "ROTATED", rotatedTo: rotation.keyId });
        }
        expect((await f.auditRows()).length).toBe(eventsBefore);
        expect(await repo.getKey("merchant_a", old.keyId)).toMatchObject({ expiresAt: retiresAt });

        const renamed = await repo.updateKey(ALICE, old.keyId, { name: "retiring", expiresAt: retiresAt }, T0 + 2);
        expect(renamed).toMatchObject({ ok: true, changed: true, key: { name: "retiring", expiresAt: retiresAt } });
        const sooner = await repo.updateKey(ALICE, old.keyId, { expiresAt: T0 + 60_000 }, T0 + 3);
        expect(sooner).toMatchObject({ ok: true, changed: true, key: { expiresAt: T0 + 60_000 } });
      });

      it("keeps a key retired at once by a rotation (grace 0) from coming back", async () => {
        const old = await create(ALICE, { expiresAt: null });
        await repo.rotateKey(ALICE, old.keyId, newRotation(), T0);
        expect(await repo.updateKey(ALICE, old.keyId, { expiresAt: null }, T0 + 1)).toMatchObject({ ok: false, reason: "ROTATED" });
        expect(await repo.getKey("merchant_a", old.keyId)).toMatchObject({ expiresAt: T0 });
      });
    });

    describe("update (T4)", () => {
      it("applies a change, moves updated_at and writes one audit row with old and new values", async () => {
        const key = await create(ALICE, { name: "old", description: "old note" });
        clock.set(T0 + 5000);
        const result = await repo.updateKey({ tenantId: "merchant_a", subject: "bob", client: null }, key.keyId, {
          name: "new",
          description: null,
          expiresAt: T0 + 86_400_000,
          scopes: ["payments:read"],
        }, clock());
        const expected: KeyRecord = {
          ...record(key)!,
          name: "new",
          description: null,
          expiresAt: T0 + 86_400_000,
          scopes: ["payments:read"],
          updatedAt: T0 + 5000,
        };
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(result.changed).toBe(true);
        expect(record(result.key)).toEqual(expected);
        expect(record(await repo.getKey("merchant_a", key.keyId))).toEqual(expected);

        const rows = await f.auditRows();
        expect(rows).toHaveLength(2);
        expect(rows[1]).toEqual({
          eventId: expect.stringMatching(/^evt_/),
          occurredAt: T0 + 5000,
          action: "api_key.updated",
          outcome: "success",
          tenantId: "merchant_a",
          actor: "bob",
          keyId: key.keyId,
          tool: null,
          reason: null,
          changes: {
            name: { from: "old", to: "new" },
            description: { from: "old note", to: null },
            expires_at: { from: null, to: iso(T0 + 86_400_000) },
            scopes: { from: [], to: ["payments:read"] },
          },
          client: null,
          prevHash: rows[0]!.hash,
          hash: expect.stringMatching(SHA256_HEX),
        });
      });

      it("records only the fields that actually change", async () => {
        const key = await create(ALICE, { name: "same", expiresAt: T0 + 1000, scopes: ["refunds:*"] });
        clock.set(T0 + 10);
        await repo.updateKey(ALICE, key.keyId, { name: "same", description: "added", expiresAt: T0 + 1000, scopes: ["refunds:*"] }, clock());
        clock.set(T0 + 20);
        await repo.updateKey(ALICE, key.keyId, { expiresAt: null }, clock());
        const rows = await f.auditRows();
        expect(rows.map((r) => r.changes)).toEqual([
          expect.any(Object),
          { description: { from: null, to: "added" } },
          { expires_at: { from: iso(T0 + 1000), to: null } },
        ]);
        expect(rows.map((r) => r.occurredAt)).toEqual([T0, T0 + 10, T0 + 20]);
      });

      it.each([
        ["the same values", { name: "same", description: "note", expiresAt: null, scopes: [] }],
        ["an empty patch", {}],
      ])("with %s changes nothing: no audit row, updated_at kept", async (_label, patch) => {
        const key = await create(ALICE, { name: "same", description: "note" });
        clock.set(T0 + 60_000);
        const result = await repo.updateKey(ALICE, key.keyId, patch, clock());
        expect(result.ok && result.changed).toBe(false);
        expect(result.ok && record(result.key)).toEqual(record(key));
        expect(record(await repo.getKey("merchant_a", key.keyId))).toEqual(record(key));
        expect((await f.auditRows()).map((r) => r.action)).toEqual(["api_key.created"]);
      });

      it("refuses a revoked key with REVOKED and changes nothing", async () => {
        const key = await create();
        await repo.revokeKey(ALICE, key.keyId, clock());
        const before = record(await repo.getKey("merchant_a", key.keyId));
        clock.set(T0 + 1000);
        expect(await repo.updateKey(ALICE, key.keyId, { name: "again" }, clock())).toEqual({ ok: false, reason: "REVOKED" });
        expect(record(await repo.getKey("merchant_a", key.keyId))).toEqual(before);
        expect((await f.auditRows()).map((r) => r.action)).toEqual(["api_key.created", "api_key.revoked"]);
      });

      it("answers NOT_FOUND for an unknown key and writes nothing", async () => {
        await create();
        expect(await repo.updateKey(ALICE, newKeyId(), { name: "x" }, clock())).toEqual({ ok: false, reason: "NOT_FOUND" });
        expect(await f.auditRows()).toHaveLength(1);
      });
    });

    describe("revoke (T5, K7)", () => {
      it("soft-deletes with one audit row, and a second revoke changes nothing", async () => {
        const key = await create();
        clock.set(T0 + 7000);
        const first = await repo.revokeKey({ tenantId: "merchant_a", subject: "carol", client: null }, key.keyId, clock());
        const revoked: KeyRecord = { ...record(key)!, revokedAt: T0 + 7000, updatedAt: T0 + 7000 };
        expect(first.ok && first.changed).toBe(true);
        expect(first.ok && record(first.key)).toEqual(revoked);

        clock.set(T0 + 9000);
        const second = await repo.revokeKey(ALICE, key.keyId, clock());
        expect(second.ok && second.changed).toBe(false);
        expect(second.ok && record(second.key)).toEqual(revoked);
        expect(record(await repo.getKey("merchant_a", key.keyId))).toEqual(revoked);
        expect(await f.keyCount()).toBe(1);

        const rows = await f.auditRows();
        expect(rows.map((r) => r.action)).toEqual(["api_key.created", "api_key.revoked"]);
        expectChained(rows);
        expect(rows[1]).toMatchObject({
          occurredAt: T0 + 7000,
          outcome: "success",
          tenantId: "merchant_a",
          actor: "carol",
          keyId: key.keyId,
          changes: { revoked_at: { from: null, to: iso(T0 + 7000) } },
        });
      });

      it("answers NOT_FOUND for an unknown key", async () => {
        expect(await repo.revokeKey(ALICE, newKeyId(), clock())).toEqual({ ok: false, reason: "NOT_FOUND" });
        expect(await f.auditRows()).toEqual([]);
      });
    });

    describe("denials (S3)", () => {
      it("records an auth.denied row with the reason and no changes", async () => {
        await repo.recordDenial({ at: clock(), tool: "get_api_key", reason: "ERR_FORBIDDEN", tenantId: "merchant_a", actor: "eve", keyId: "key_AAAAAAAAAAAAAAAAAAAA" });
        await repo.recordDenial({ at: clock(), tool: "list_api_keys", reason: "ERR_AUTH_INVALID", tenantId: null, actor: null, keyId: null });
        expect(await f.auditRows()).toEqual([
          {
            eventId: expect.stringMatching(/^evt_/),
            occurredAt: T0,
            action: "auth.denied",
            outcome: "denied",
            tenantId: "merchant_a",
            actor: "eve",
            keyId: "key_AAAAAAAAAAAAAAAAAAAA",
            tool: "get_api_key",
            reason: "ERR_FORBIDDEN",
            changes: null,
            client: null,
            prevHash: GENESIS_HASH,
            hash: expect.stringMatching(SHA256_HEX),
          },
          {
            eventId: expect.stringMatching(/^evt_/),
            occurredAt: T0,
            action: "auth.denied",
            outcome: "denied",
            tenantId: null,
            actor: null,
            keyId: null,
            tool: "list_api_keys",
            reason: "ERR_AUTH_INVALID",
            changes: null,
            client: null,
            prevHash: expect.stringMatching(SHA256_HEX),
            hash: expect.stringMatching(SHA256_HEX),
          },
        ]);
        expectChained(await f.auditRows());
        expect(await f.keyCount()).toBe(0);
      });
    });

    describe("atomicity: a change and its audit row commit together (S3, E4)", () => {
      it("keeps no key when the audit insert fails", async () => {
        const undo = await f.refuse("audit insert");
        const input = newKey();
        await expect(repo.createKey(ALICE, input, clock())).rejects.toThrow(/forced failure/);
        expect(await f.keyCount()).toBe(0);
        expect(await repo.getKey("merchant_a", input.keyId)).toBeUndefined();
        await undo();
        expect(await f.auditRows()).toEqual([]);
        // The repository is usable again: nothing was left half-open.
        await repo.createKey(ALICE, newKey(), clock());
        expect(await f.keyCount()).toBe(1);
        expect(await f.auditRows()).toHaveLength(1);
      });

      it("writes no audit row when the key insert fails", async () => {
        const undo = await f.refuse("key insert");
        await expect(create()).rejects.toThrow(/forced failure/);
        await undo();
        expect(await f.auditRows()).toEqual([]);
        expect(await f.keyCount()).toBe(0);
      });

      it("keeps the old values when the audit insert of an update fails", async () => {
        const key = await create(ALICE, { name: "before" });
        clock.set(T0 + 1000);
        const undo = await f.refuse("audit insert");
        await expect(repo.updateKey(ALICE, key.keyId, { name: "after" }, clock())).rejects.toThrow(/forced failure/);
        await undo();
        expect(record(await repo.getKey("merchant_a", key.keyId))).toEqual(record(key));
        expect(await f.auditRows()).toHaveLength(1);
      });

      it("keeps the key active when the audit insert of a revoke fails", async () => {
        const key = await create();
        clock.set(T0 + 1000);
        const undo = await f.refuse("audit insert");
        await expect(repo.revokeKey(ALICE, key.keyId, clock())).rejects.toThrow(/forced failure/);
        await undo();
        expect(record(await repo.getKey("merchant_a", key.keyId))).toEqual(record(key));
        expect(await f.auditRows()).toHaveLength(1);
      });

      it.each(["audit insert", "key insert", "key update"] as const)("keeps both keys as they were when the %s of a rotation fails", async (write) => {
        const key = await create(ALICE, { expiresAt: T0 + 86_400_000 });
        clock.set(T0 + 1000);
        const rotation = newRotation("secret", "test", 60_000);
        const undo = await f.refuse(write);
        await expect(repo.rotateKey(ALICE, key.keyId, rotation, clock())).rejects.toThrow(/forced failure/);
        await undo();
        expect(record(await repo.getKey("merchant_a", key.keyId))).toEqual(record(key));
        expect(await repo.getKey("merchant_a", rotation.keyId)).toBeUndefined();
        expect(await f.keyCount()).toBe(1);
        expect((await f.auditRows()).map((r) => r.action)).toEqual(["api_key.created"]);
      });

      it("writes no audit row when the key update of an update or a revoke fails", async () => {
        const key = await create();
        const undo = await f.refuse("key update");
        await expect(repo.updateKey(ALICE, key.keyId, { name: "after" }, clock())).rejects.toThrow(/forced failure/);
        await expect(repo.revokeKey(ALICE, key.keyId, clock())).rejects.toThrow(/forced failure/);
        await undo();
        expect((await f.auditRows()).map((r) => r.action)).toEqual(["api_key.created"]);
        expect(record(await repo.getKey("merchant_a", key.keyId))).toEqual(record(key));
      });
    });

    describe("the MCP client next to the subject in every audit event", () => {
      const CLAUDE: ClientInfo = { name: "claude-code", version: "2.1.0" };
      const ALICE_IN_CLAUDE: Actor = { ...ALICE, client: CLAUDE };

      it("records the actor's client with each change, lists it, and null where none was known", async () => {
        const key = made(await repo.createKey(ALICE_IN_CLAUDE, newKey(), clock()));
        await repo.updateKey(ALICE_IN_CLAUDE, key.keyId, { name: "renamed" }, clock());
        const rotated = await repo.rotateKey(ALICE_IN_CLAUDE, key.keyId, newRotation(), clock());
        expect(rotated.ok).toBe(true);
        await repo.revokeKey({ ...ALICE, client: { name: "cursor", version: "" } }, key.keyId, clock());
        await repo.recordDenial({ at: clock(), tool: "get_api_key", reason: "ERR_FORBIDDEN", tenantId: "merchant_a", actor: "eve", keyId: null, client: CLAUDE });
        await create(ALICE);
        const rows = await f.auditRows();
        expect(rows.map((row) => [row.action, row.client])).toEqual([
          ["api_key.created", CLAUDE],
          ["api_key.updated", CLAUDE],
          ["api_key.rotated", CLAUDE],
          ["api_key.revoked", { name: "cursor", version: "" }],
          ["auth.denied", CLAUDE],
          ["api_key.created", null],
        ]);
        expectChained(rows);
        const listed = await repo.listAuditEvents("merchant_a", { limit: 10 });
        expect(listed.events.map((event) => [event.action, event.client])).toEqual(rows.map((row) => [row.action, row.client]).reverse());
      });
    });

    describe("declined confirmations", () => {
      it("record one denied event of their own, with the answer and the client, and change nothing else", async () => {
        const key = await create(ALICE, { environment: "live" });
        clock.set(T0 + 1000);
        const client = { name: "claude-desktop", version: "1.0.0" };
        await repo.recordDecline({ actor: { ...ALICE, client }, change: "revoke", keyId: key.keyId, answer: "decline", at: clock() });
        await repo.recordDecline({ actor: ALICE, change: "rotate", keyId: key.keyId, answer: "cancel", at: clock() });
        expect(record(await repo.getKey("merchant_a", key.keyId))).toEqual(record(key));
        const rows = await f.auditRows();
        expect(rows.slice(1)).toEqual([
          expect.objectContaining({
            occurredAt: T0 + 1000,
            action: "api_key.revoke_declined",
            outcome: "denied",
            tenantId: "merchant_a",
            actor: "alice",
            keyId: key.keyId,
            tool: "delete_api_key",
            reason: "ERR_DECLINED",
            changes: { confirmation: { from: null, to: "decline" } },
            client,
          }),
          expect.objectContaining({
            action: "api_key.rotate_declined",
            tool: "rotate_api_key",
            reason: "ERR_DECLINED",
            changes: { confirmation: { from: null, to: "cancel" } },
            client: null,
          }),
        ]);
        expectChained(rows);
        const listed = await repo.listAuditEvents("merchant_a", { limit: 10, action: "api_key.revoke_declined" });
        expect(listed.events).toEqual([expect.objectContaining({ keyId: key.keyId, outcome: "denied", reason: "ERR_DECLINED", client })]);
      });
    });

    describe("idempotent creates and rotations (retries)", () => {
      const claim = (key = "retry-1", args: Record<string, unknown> = { name: "checkout" }, tool: IdempotencyClaim["tool"] = "create_api_key"): IdempotencyClaim => ({
        tool,
        keyHash: fingerprintArguments(tool, { idempotencyKey: key }),
        fingerprint: fingerprintArguments(tool, args),
        delivery: "file",
      });

      it("records the claim with the key it made, in the actor's tenant, for 24 hours", async () => {
        const first = claim();
        const key = made(await repo.createKey(ALICE, newKey(), clock(), first));
        expect(await repo.findIdempotencyRecord("merchant_a", "create_api_key", first.keyHash)).toEqual({
          ...first,
          tenantId: "merchant_a",
          keyId: key.keyId,
          createdAt: T0,
          expiresAt: T0 + IDEMPOTENCY_TTL_MS,
        });
        expect(await repo.findIdempotencyRecord("merchant_b", "create_api_key", first.keyHash)).toBeUndefined();
        expect(await repo.findIdempotencyRecord("merchant_a", "rotate_api_key", first.keyHash)).toBeUndefined();
      });

      it("answers a claim already held with its record and writes nothing, whether the arguments match or not", async () => {
        const first = claim();
        const key = made(await repo.createKey(ALICE, newKey(), clock(), first));
        const rowsBefore = await f.auditRows();
        clock.set(T0 + IDEMPOTENCY_TTL_MS - 1);
        for (const again of [first, claim("retry-1", { name: "other" })]) {
          const retried = await repo.createKey(ALICE, newKey(), clock(), again);
          expect(retried).toEqual({ ok: false, reason: "CLAIMED", record: expect.objectContaining({ keyId: key.keyId, fingerprint: first.fingerprint }) });
          if (!retried.ok) expect(judgeRetry(retried.record, again, clock()).kind).toBe(again === first ? "replay" : "conflict");
        }
        expect(await f.keyCount()).toBe(1);
        expect(await f.auditRows()).toEqual(rowsBefore);
      });

      it("scopes claims per tenant and per tool", async () => {
        const shared = claim();
        made(await repo.createKey(ALICE, newKey(), clock(), shared));
        made(await repo.createKey(MALLORY, newKey(), clock(), shared));
        const old = await create(ALICE);
        const rotated = await repo.rotateKey(ALICE, old.keyId, newRotation(), clock(), { ...shared, tool: "rotate_api_key" });
        expect(rotated.ok).toBe(true);
        expect(await f.keyCount()).toBe(4);
      });

      it("forgets a claim once it expires: the same key then makes a new key and takes the record over", async () => {
        const first = claim();
        made(await repo.createKey(ALICE, newKey(), clock(), first));
        clock.set(T0 + IDEMPOTENCY_TTL_MS);
        const second = made(await repo.createKey(ALICE, newKey(), clock(), claim("retry-1", { name: "other" })));
        expect(await repo.findIdempotencyRecord("merchant_a", "create_api_key", first.keyHash)).toMatchObject({
          keyId: second.keyId,
          createdAt: T0 + IDEMPOTENCY_TTL_MS,
          expiresAt: T0 + 2 * IDEMPOTENCY_TTL_MS,
        });
      });

      it("judges a rotation's claim before its rules: the retry of a rotation that succeeded is CLAIMED, not ALREADY_ROTATED", async () => {
        const old = await create(ALICE, { expiresAt: T0 + 86_400_000 });
        const rotationClaim = claim("rotate-1", { key_id: old.keyId, grace_period: "0" }, "rotate_api_key");
        const rotated = await repo.rotateKey(ALICE, old.keyId, newRotation(), clock(), rotationClaim);
        if (!rotated.ok) throw new Error(rotated.reason);
        expect(await repo.findIdempotencyRecord("merchant_a", "rotate_api_key", rotationClaim.keyHash)).toMatchObject({ keyId: rotated.key.keyId });
        const again = await repo.rotateKey(ALICE, old.keyId, newRotation(), clock(), rotationClaim);
        expect(again).toEqual({ ok: false, reason: "CLAIMED", record: expect.objectContaining({ keyId: rotated.key.keyId }) });
        expect(await f.keyCount()).toBe(2);
      });

      it("keeps no claim for a rotation that was refused", async () => {
        const key = await create(ALICE);
        await repo.revokeKey(ALICE, key.keyId, clock());
        const refused = claim("rotate-2", { key_id: key.keyId }, "rotate_api_key");
        expect(await repo.rotateKey(ALICE, key.keyId, newRotation(), clock(), refused)).toEqual({ ok: false, reason: "REVOKED" });
        expect(await repo.rotateKey(ALICE, newKeyId(), newRotation(), clock(), refused)).toEqual({ ok: false, reason: "NOT_FOUND" });
        expect(await repo.findIdempotencyRecord("merchant_a", "rotate_api_key", refused.keyHash)).toBeUndefined();
      });

      it("keeps neither key nor audit row when the claim cannot be recorded", async () => {
        const undo = await f.refuse("idempotency insert");
        const input = newKey();
        await expect(repo.createKey(ALICE, input, clock(), claim())).rejects.toThrow(/forced failure/);
        const old = await create(ALICE);
        await expect(repo.rotateKey(ALICE, old.keyId, newRotation(), clock(), claim("r", {}, "rotate_api_key"))).rejects.toThrow(/forced failure/);
        await undo();
        expect(await f.keyCount()).toBe(1);
        expect(await repo.getKey("merchant_a", input.keyId)).toBeUndefined();
        expect(record(await repo.getKey("merchant_a", old.keyId))).toEqual(record(old));
        expect((await f.auditRows()).map((row) => row.action)).toEqual(["api_key.created"]);
        expect(await repo.findIdempotencyRecord("merchant_a", "create_api_key", claim().keyHash)).toBeUndefined();
      });

      it(`deletes expired claims as keys are written, at most ${IDEMPOTENCY_SWEEP_LIMIT} per write, oldest expiry first`, async () => {
        const count = IDEMPOTENCY_SWEEP_LIMIT + 20;
        const claims = Array.from({ length: count }, (_, i) => claim(`sweep-${i}`));
        for (const [i, each] of claims.entries()) {
          clock.set(T0 + i);
          made(await repo.createKey(i % 2 ? ALICE : MALLORY, newKey(), clock(), each));
        }
        const present = async () => {
          const found = await Promise.all(claims.map((each, i) => repo.findIdempotencyRecord(i % 2 ? "merchant_a" : "merchant_b", "create_api_key", each.keyHash)));
          return found.map((record) => record !== undefined);
        };
        clock.set(T0 + IDEMPOTENCY_TTL_MS + count);
        // A read deletes nothing; a write without a claim sweeps too.
        expect(await present()).toEqual(claims.map(() => true));
        await create(ALICE);
        expect(await present()).toEqual(claims.map((_, i) => i >= IDEMPOTENCY_SWEEP_LIMIT));
        await create(MALLORY);
        expect(await present()).toEqual(claims.map(() => false));
      });
    });

    // The interface promises KeyRecord; a backend's own columns (SQLite's `seq`) should not ride
    // along, or the two backends of H2 return different shapes.
    it("returns records with exactly the KeyRecord fields from every method", async () => {
      const key = await create();
      await create();
      const shapes = [
        Object.keys(key),
        Object.keys((await repo.getKey("merchant_a", key.keyId))!),
        Object.keys((await repo.listKeys("merchant_a", { now: clock(), limit: 1 })).keys[0]!),
      ];
      const updated = await repo.updateKey(ALICE, key.keyId, { name: "renamed" }, clock());
      if (updated.ok) shapes.push(Object.keys(updated.key));
      const rotation = newRotation();
      const rotated = await repo.rotateKey(ALICE, key.keyId, rotation, clock());
      if (rotated.ok) shapes.push(Object.keys(rotated.key), Object.keys(rotated.previous));
      shapes.push(Object.keys((await repo.findKeyByHash(rotation.hash))!));
      const revoked = await repo.revokeKey(ALICE, key.keyId, clock());
      if (revoked.ok) shapes.push(Object.keys(revoked.key));
      expect(shapes).toHaveLength(8);
      for (const shape of shapes) expect(shape.sort()).toEqual([...KEY_RECORD_FIELDS].sort());
    });
  });
}
