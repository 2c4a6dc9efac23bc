/**
 * The in-process verification measure, in a process of its own so its memory is the
 * verifier's and not the benchmark's: alternating rounds of openVerifier().verify and of the
 * hand-written baseline (SHA-256 and one prepared indexed SELECT on the same file).
 * Usage: node verify-worker.js <db> <file of plaintext keys, one per line>. Prints JSON.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import Database from "better-sqlite3";
import { openVerifier } from "../src/lib.js";

const [dbPath, keysPath] = process.argv.slice(2) as [string, string];
const plaintexts = readFileSync(keysPath, "utf8").trim().split("\n");
const pick = (i: number) => plaintexts[(i * 7919) % plaintexts.length]!;

const verifier = openVerifier({ db: dbPath });
const raw = new Database(dbPath, { readonly: true });
const lookup = raw.prepare("SELECT key_id, tenant_id, expires_at, revoked_at FROM api_keys WHERE key_hash = ?");

/**
 * Calls per second of `run` over a second, awaiting each call as a service would. With
 * `yielding`, the event loop gets a turn after every 500 calls, as it would in a service, so the
 * verifier's once-a-second write of the uses it counted happens inside the timed rounds (and,
 * were it due during a baseline round, at the start of the next of ours): that write is part of
 * what verification costs. The baseline has no timers, so it never needs the turn.
 */
async function perSecond(run: (i: number) => unknown, yielding: boolean): Promise<number> {
  const started = process.hrtime.bigint();
  let i = 0;
  while (Number(process.hrtime.bigint() - started) < 1e9) {
    for (let j = 0; j < 500; j++) await run(i++);
    if (yielding) await new Promise((resolve) => setImmediate(resolve));
  }
  return i / (Number(process.hrtime.bigint() - started) / 1e9);
}

const ours: number[] = [];
const baseline: number[] = [];
for (let round = 0; round < 5; round++) {
  ours.push(await perSecond((i) => verifier.verify(pick(i)), true));
  baseline.push(await perSecond((i) => lookup.get(createHash("sha256").update(pick(i)).digest("hex")), false));
}
await verifier.close();
raw.close();
process.stdout.write(JSON.stringify({ ours, baseline, rssMb: process.memoryUsage().rss / 1024 / 1024 }));
