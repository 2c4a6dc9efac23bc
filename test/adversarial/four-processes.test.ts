import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { recordFigures } from "../helpers/figures.js";
import type { CallOutcome } from "../helpers/server.js";
import { spawnClient, tempDir, within, type SpawnedClient } from "../helpers/spawn.js";
import { merchantToken, TEST_SECRET } from "../helpers/tokens.js";

const PROCESSES = 4;
const CREATES = 100;
const UPDATES = 40;
const REVOKES = 40;
/** Rotations of keys not otherwise touched, half with no grace period and half with a day. */
const ROTATIONS = 20;
const TENANT = "merchant_shared_load";
/** Times another program (a backup, an sqlite3 shell) takes the write lock during the run, and for how long. */
const LOCK_HOLDS = 8;
const LOCK_HOLD_MS = 250;

const require = createRequire(import.meta.url);

/**
 * An unlucky neighbour: a separate process that, every 250 ms, holds the write lock for 250 ms
 * and then forces a full WAL checkpoint — well inside the 5 s busy timeout, so every writer must
 * wait it out rather than fail. `holding` resolves while it holds the lock for the first time,
 * so that work started then meets a held lock; `done` with the number of holds.
 */
function startLockHolder(dbPath: string): { holding: Promise<void>; done: Promise<number> } {
  const script = `
    const Database = require(${JSON.stringify(require.resolve("better-sqlite3"))});
    const db = new Database(${JSON.stringify(dbPath)});
    db.pragma("busy_timeout = 5000");
    const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    let holds = 0;
    const tick = () => {
      db.exec("BEGIN IMMEDIATE");
      if (holds === 0) require("node:fs").writeSync(1, "holding\\n");
      pause(${LOCK_HOLD_MS});
      db.exec("COMMIT");
      db.pragma("wal_checkpoint(TRUNCATE)");
      if (++holds < ${LOCK_HOLDS}) setTimeout(tick, ${LOCK_HOLD_MS}); else { db.close(); process.stdout.write(String(holds)); }
    };
    tick();`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  let signalHolding: () => void;
  const holding = new Promise<void>((resolve) => (signalHolding = resolve));
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString();
    if (out.startsWith("holding\n")) signalHolding();
  });
  const done = new Promise<number>((resolve, reject) =>
    child.on("exit", (code) => (code === 0 ? resolve(Number(out.slice("holding\n".length))) : reject(new Error(`lock holder exited with ${code}`)))),
  );
  return { holding, done };
}

/** The data of a successful call; a failure is collected, not thrown, so every one is reported. */
function collect(failures: string[], label: string) {
  return (outcome: CallOutcome) => {
    if (!outcome.ok) failures.push(`${label}: ${outcome.text}`);
    return outcome.ok ? outcome.data : undefined;
  };
}

// S1: several processes may share one file. Every write is an IMMEDIATE transaction; contention
// — from each other and from a neighbour that holds the lock — must be absorbed by the busy
// timeout, never reach a client as an error.
describe(`${PROCESSES} server processes on one database file, all writing at once`, () => {
  let dir: ReturnType<typeof tempDir>;
  let dbPath: string;
  let servers: SpawnedClient[] = [];

  beforeEach(() => {
    dir = tempDir();
    dbPath = join(dir.path, "shared.db");
  });
  afterEach(async () => {
    await Promise.all(servers.map((server) => server.close()));
    servers = [];
    dir.remove();
  });

  it(`each creates ${CREATES} keys, then updates ${UPDATES}, revokes ${REVOKES} and rotates ${ROTATIONS} of its own: no errors, exact counts`, async () => {
    servers = await Promise.all(
      Array.from({ length: PROCESSES }, async (_, p) =>
        spawnClient({
          API_KEYS_MCP_JWT_SECRET: TEST_SECRET,
          API_KEYS_MCP_DB: dbPath,
          API_KEYS_MCP_TOKEN: await merchantToken(TENANT, `user_${p}`),
          API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000",
          API_KEYS_MCP_LOG_LEVEL: "warn",
        }),
      ),
    );
    const failures: string[] = [];

    const work = async (server: SpawnedClient, p: number) => {
      const created = await Promise.all(
        Array.from({ length: CREATES }, (_, i) => server.call("create_api_key", { name: `p${p} key ${i}` }).then(collect(failures, "create"))),
      );
      const ids = created.filter((data) => data !== undefined).map((data) => data.key.key_id as string);
      const [, , rotations] = await Promise.all([
        Promise.all(
          ids
            .slice(0, UPDATES)
            .map((key_id, i) =>
              server.call("update_api_key", { key_id, name: `p${p} renamed ${i}`, description: "updated under load" }).then(collect(failures, "update")),
            ),
        ),
        Promise.all(ids.slice(UPDATES, UPDATES + REVOKES).map((key_id) => server.call("delete_api_key", { key_id }).then(collect(failures, "revoke")))),
        Promise.all(
          ids
            .slice(UPDATES + REVOKES, UPDATES + REVOKES + ROTATIONS)
            .map((key_id, i) => server.call("rotate_api_key", { key_id, grace_period: i % 2 === 0 ? "0" : "24h" }).then(collect(failures, "rotate"))),
        ),
      ]);
      return { ids, replacements: rotations.filter((data) => data !== undefined).map((data) => data.key.key_id as string) };
    };
    // The work starts while the neighbour holds the lock: the first creates of every process wait it out.
    const neighbour = startLockHolder(dbPath);
    await within(neighbour.holding, 10_000, "the neighbour's first hold");
    const [holds, ...byProcess] = await Promise.all([neighbour.done, ...servers.map(work)]);

    expect(failures).toEqual([]);
    const stderr = servers.flatMap((server) => server.stderr);
    expect(stderr.filter((line) => line.includes('"level":"error"'))).toEqual([]);

    const db = new Database(dbPath, { readonly: true });
    try {
      const total = PROCESSES * CREATES;
      expect(db.prepare("SELECT COUNT(*) FROM api_keys").pluck().get()).toBe(total + PROCESSES * ROTATIONS);
      expect(db.prepare("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NOT NULL").pluck().get()).toBe(PROCESSES * REVOKES);
      expect(db.prepare("SELECT COUNT(*) FROM api_keys WHERE description = 'updated under load' AND revoked_at IS NULL").pluck().get()).toBe(
        PROCESSES * UPDATES,
      );
      // A rotation is one event, on the key it replaces; its replacement has no created event.
      expect(db.prepare("SELECT action, COUNT(*) AS n FROM audit_events GROUP BY action ORDER BY action").all()).toEqual([
        { action: "api_key.created", n: total },
        { action: "api_key.revoked", n: PROCESSES * REVOKES },
        { action: "api_key.rotated", n: PROCESSES * ROTATIONS },
        { action: "api_key.updated", n: PROCESSES * UPDATES },
      ]);
      // Every rotation linked both ways, in one tenant, the replacement a copy, the old key retired.
      expect(
        db
          .prepare(
            `SELECT COUNT(*) FROM api_keys o JOIN api_keys n ON n.key_id = o.rotated_to
             WHERE n.rotated_from = o.key_id AND n.tenant_id = o.tenant_id AND n.name = o.name AND o.expires_at IS NOT NULL AND n.expires_at IS NULL`,
          )
          .pluck()
          .get(),
      ).toBe(PROCESSES * ROTATIONS);
      // Each process changed only its own keys, and each change is attributed to its actor.
      for (const [p, { ids, replacements }] of (byProcess as { ids: string[]; replacements: string[] }[]).entries()) {
        expect(new Set(ids).size).toBe(CREATES);
        expect(new Set(replacements).size).toBe(ROTATIONS);
        const actors = db
          .prepare(`SELECT DISTINCT actor FROM audit_events WHERE key_id IN (${ids.map(() => "?").join(",")})`)
          .pluck()
          .all(...ids);
        expect(actors).toEqual([`user_${p}`]);
        const creators = db
          .prepare(`SELECT DISTINCT created_by FROM api_keys WHERE key_id IN (${replacements.map(() => "?").join(",")})`)
          .pluck()
          .all(...replacements);
        expect(creators).toEqual([`user_${p}`]);
      }
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    } finally {
      db.close();
    }

    expect(holds).toBe(LOCK_HOLDS);
    recordFigures("four-processes", {
      processes: PROCESSES,
      foreign_lock_holds: holds as number,
      operations: PROCESSES * (CREATES + UPDATES + REVOKES + ROTATIONS),
      rotations: PROCESSES * ROTATIONS,
      client_errors: failures.length,
      lost: 0,
    });
  }, 120_000);
});
