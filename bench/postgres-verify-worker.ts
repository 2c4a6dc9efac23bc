/**
 * The PostgreSQL verification measure, in a process of its own: alternating one-second rounds
 * of openVerifier({ databaseUrl }).verify and of its floor — the same client library (pg), one
 * prepared SELECT by hash on the same database, SHA-256 by hand — each verification a different
 * key, awaited one after the other as a request handler would.
 * Usage: node postgres-verify-worker.js <database url> <file of plaintext keys>. Prints JSON.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import pg from "pg";
import { openVerifier } from "../src/lib.js";

const [url, keysPath] = process.argv.slice(2) as [string, string];
const plaintexts = readFileSync(keysPath, "utf8").trim().split("\n");
const pick = (i: number) => plaintexts[(i * 7919) % plaintexts.length]!;

const verifier = openVerifier({ databaseUrl: url });
const floor = new pg.Client({ connectionString: url });
await floor.connect();
const lookup = { name: "floor_by_hash", text: "SELECT key_id, tenant_id, expires_at, revoked_at FROM api_keys WHERE key_hash = $1" };

async function perSecond(run: (i: number) => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  let i = 0;
  while (Number(process.hrtime.bigint() - started) < 1e9) await run(i++);
  return i / (Number(process.hrtime.bigint() - started) / 1e9);
}

const ours: number[] = [];
const baseline: number[] = [];
// A warm-up of each, so both have their connections and prepared statements.
await perSecond((i) => verifier.verify(pick(i), { type: "secret", environment: "test" }));
await perSecond((i) => floor.query({ ...lookup, values: [createHash("sha256").update(pick(i)).digest("hex")] }));
for (let round = 0; round < 5; round++) {
  ours.push(await perSecond((i) => verifier.verify(pick(i), { type: "secret", environment: "test" })));
  baseline.push(await perSecond((i) => floor.query({ ...lookup, values: [createHash("sha256").update(pick(i)).digest("hex")] })));
}
await verifier.close();
await floor.end();
process.stdout.write(JSON.stringify({ ours, baseline }));
