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

/** Calls per second of `run` over half a second, awaiting each call as a service would. */
async function perSecond(run: (i: number) => unknown): Promise<number> {
  const started = process.hrtime.bigint();
  let i = 0;
  while (Number(process.hrtime.bigint() - started) < 500e6) {
    for (let j = 0; j < 500; j++) await run(i++);
  }
  return i / (Number(process.hrtime.bigint() - started) / 1e9);
}

const ours: number[] = [];
const baseline: number[] = [];
for (let round = 0; round < 5; round++) {
  ours.push(await perSecond((i) => verifier.verify(pick(i))));
  baseline.push(await perSecond((i) => lookup.get(createHash("sha256").update(pick(i)).digest("hex"))));
}
await verifier.close();
raw.close();
process.stdout.write(JSON.stringify({ ours, baseline, rssMb: process.memoryUsage().rss / 1024 / 1024 }));
