import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { IDEMPOTENCY_TTL_MS } from "../../src/keys/idempotency.js";
import { changeEvents, dumpDatabase, rows } from "../helpers/db.js";
import { startTestServer, testClock, type CallOutcome, type TestServer, type TestClock } from "../helpers/server.js";
import { tempDir } from "../helpers/spawn.js";
import { merchantToken } from "../helpers/tokens.js";

const START = Date.UTC(2026, 10, 25, 12, 0, 0);

function data(result: CallOutcome) {
  if (!result.ok) throw new Error(result.text);
  return result.data;
}

describe("retries: idempotency_key on create and rotate", () => {
  let root: ReturnType<typeof tempDir>;
  let dbPath: string;
  let deliveryDir: string;
  let clock: TestClock;
  let servers: TestServer[];
  let server: TestServer;
  let alice: string;

  const start = async () => {
    const started = await startTestServer({ clock, env: { API_KEYS_MCP_DB: dbPath, API_KEYS_MCP_DELIVERY_DIR: deliveryDir } });
    await started.client.listTools();
    servers.push(started);
    return started;
  };
  const call = (tool: string, args: Record<string, unknown>, on = server, token = alice) => on.call(tool, { token, ...args });

  beforeEach(async () => {
    root = tempDir();
    dbPath = join(root.path, "keys.db");
    deliveryDir = join(root.path, "delivered");
    mkdirSync(deliveryDir, { mode: 0o700 });
    clock = testClock(START);
    servers = [];
    server = await start();
    alice = await merchantToken("merchant_r", "alice", undefined, { now: START / 1000, ttl: 3 * 86_400 });
  });
  afterEach(async () => {
    for (const each of servers) await each.close();
    root.remove();
  });

  it("answers a repeated create with the same key, without its secret, saying it was delivered before", async () => {
    const args = { name: "checkout", environment: "live", idempotency_key: "6f1c8a2e-retry" };
    const first = data(await call("create_api_key", args));
    expect(first).toMatchObject({ replayed: false, api_key: expect.stringMatching(/^sk_live_/) });
    clock.advance(60_000);
    const again = await call("create_api_key", args);
    const repeated = data(again);
    expect(repeated).toEqual({ key: first.key, delivery: { method: "inline" }, replayed: true });
    expect(again.ok && again.texts[0]).toMatch(/^This repeats an earlier call .* already made key_\w+\. Its secret was delivered then, in that call's result, and is not delivered again/);
    expect(JSON.stringify(again)).not.toContain(first.api_key.slice(8));
    expect(rows(server.db!, "api_keys")).toHaveLength(1);
    expect(changeEvents(server.db!).map((event) => event.action)).toEqual(["api_key.created"]);
  });

  it("recognises the retry after a restart: a new server on the same database returns the same key id and no plaintext", async () => {
    const args = { name: "survives", delivery: "file", idempotency_key: "restart-1" };
    const first = data(await call("create_api_key", args));
    expect(readdirSync(deliveryDir)).toEqual([`${first.key.key_id}.key`]);
    await server.close();
    servers = servers.filter((each) => each !== server);

    clock.advance(3_600_000);
    const restarted = await start();
    const again = await call("create_api_key", args, restarted);
    const repeated = data(again);
    expect(repeated.key.key_id).toBe(first.key.key_id);
    expect(repeated).toMatchObject({ replayed: true, delivery: { method: "file" } });
    expect(repeated.api_key).toBeUndefined();
    expect(again.ok && again.texts[0]).toContain(`in the file ${first.key.key_id}.key in the server's delivery directory`);
    expect(readdirSync(deliveryDir)).toEqual([`${first.key.key_id}.key`]);
    expect(rows(restarted.db!, "api_keys")).toHaveLength(1);
  });

  it("answers ERR_CONFLICT for the same idempotency_key with other arguments, and makes nothing", async () => {
    const first = data(await call("create_api_key", { name: "one", idempotency_key: "conflict-1" }));
    for (const other of [{ name: "two" }, { name: "one", environment: "live" }, { name: "one", scopes: ["payments:read"] }, { name: "one", delivery: "file" }]) {
      const refused = await call("create_api_key", { ...other, idempotency_key: "conflict-1" });
      expect(refused.ok ? "ok" : refused.text).toMatch(
        new RegExp(`^ERR_CONFLICT: This idempotency_key was used in the last 24 hours for a create_api_key call with other arguments \\(it made ${first.key.key_id}\\)`),
      );
    }
    expect(rows(server.db!, "api_keys")).toHaveLength(1);
    expect(readdirSync(deliveryDir)).toEqual([]);
  });

  it("treats two spellings of the same request as one: defaults, scope order, a date-time's offset, a JWK's members", async () => {
    const { publicKey } = await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256" });
    const jwk = await exportJWK(publicKey);
    const first = data(
      await call("create_api_key", {
        name: "spelled",
        scopes: ["refunds:*", "payments:read"],
        expiration: "2027-06-01T02:00:00+02:00",
        delivery: { encrypt_to: jwk },
        idempotency_key: "same-1",
      }),
    );
    const again = data(
      await call("create_api_key", {
        name: "spelled",
        type: "secret",
        environment: "test",
        scopes: ["payments:read", "refunds:*", "payments:read"],
        expiration: "2027-06-01T00:00:00Z",
        delivery: { encrypt_to: { y: jwk.y, x: jwk.x, kid: "labelled later", crv: jwk.crv, kty: jwk.kty } },
        idempotency_key: "same-1",
      }),
    );
    expect(again).toMatchObject({ replayed: true, key: { key_id: first.key.key_id }, delivery: { method: "encrypt_to" } });
    expect(again.delivery.jwe).toBeUndefined();
    const otherKey = await exportJWK((await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256" })).publicKey);
    const conflict = await call("create_api_key", { name: "spelled", scopes: ["payments:read", "refunds:*"], expiration: "2027-06-01T00:00:00Z", delivery: { encrypt_to: otherKey }, idempotency_key: "same-1" });
    expect(conflict.ok ? "ok" : conflict.code).toBe("ERR_CONFLICT");
  });

  it("scopes idempotency keys per tenant and per tool, and forgets them after 24 hours", async () => {
    const bob = await merchantToken("merchant_other", "bob", undefined, { now: START / 1000, ttl: 3 * 86_400 });
    const mine = data(await call("create_api_key", { name: "k", idempotency_key: "shared" }));
    const theirs = data(await call("create_api_key", { name: "k", idempotency_key: "shared" }, server, bob));
    expect(theirs).toMatchObject({ replayed: false });
    expect(theirs.key.key_id).not.toBe(mine.key.key_id);
    const rotated = data(await call("rotate_api_key", { key_id: mine.key.key_id, grace_period: "1h", idempotency_key: "shared" }));
    expect(rotated).toMatchObject({ replayed: false, previous: { key_id: mine.key.key_id } });

    clock.advance(IDEMPOTENCY_TTL_MS);
    const later = data(await call("create_api_key", { name: "other arguments, a day later", idempotency_key: "shared" }));
    expect(later).toMatchObject({ replayed: false, api_key: expect.any(String) });
  });

  it("answers a repeated rotation with the key it made and the key it replaced, even once the old key has stopped", async () => {
    const old = data(await call("create_api_key", { name: "to rotate" }));
    const args = { key_id: old.key.key_id, grace_period: "0", idempotency_key: "rotate-1" };
    const first = data(await call("rotate_api_key", args));
    clock.advance(5_000);
    const again = data(await call("rotate_api_key", args));
    expect(again).toEqual({
      key: { ...first.key },
      delivery: { method: "inline" },
      previous: { ...first.previous, status: "expired" },
      replayed: true,
    });
    expect(rows(server.db!, "api_keys")).toHaveLength(2);
    expect(changeEvents(server.db!).map((event) => event.action)).toEqual(["api_key.created", "api_key.rotated"]);
    const otherGrace = await call("rotate_api_key", { ...args, grace_period: "1h" });
    expect(otherGrace.ok ? "ok" : otherGrace.code).toBe("ERR_CONFLICT");
  });

  it("makes one key for two identical calls in flight at once: one gets the secret, the other the replay", async () => {
    const args = { name: "raced", idempotency_key: "race-1" };
    const [a, b] = (await Promise.all([call("create_api_key", args), call("create_api_key", args)])).map(data);
    expect(a.key.key_id).toBe(b.key.key_id);
    expect([a.replayed, b.replayed].sort()).toEqual([false, true]);
    expect([a.api_key, b.api_key].filter(Boolean)).toHaveLength(1);
    expect(rows(server.db!, "api_keys")).toHaveLength(1);
  });

  it("stores neither the idempotency key nor any secret, and logs neither", async () => {
    const idempotencyKey = "very-distinctive-idempotency-key-4711";
    const created = data(await call("create_api_key", { name: "quiet", idempotency_key: idempotencyKey }));
    await call("create_api_key", { name: "quiet", idempotency_key: idempotencyKey });
    const stored = dumpDatabase(server.db!);
    expect(stored).not.toContain(idempotencyKey);
    expect(stored).not.toContain(created.api_key.slice(8));
    expect(server.rawLogs.join("\n")).not.toContain(idempotencyKey);
    expect(server.db!.prepare("SELECT key_id, delivery FROM idempotency_keys").all()).toEqual([{ key_id: created.key.key_id, delivery: "inline" }]);
  });
});
