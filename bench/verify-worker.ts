/**
 * The in-process verification measures, in a process of their own per database file, driven by
 * the benchmark over IPC so that rounds on several files and both sides alternate.
 *
 *   node verify-worker.js <db> <plaintexts file> [<lib.js to take openVerifier from>]
 *
 * Messages in: `{ side: "ours" | "floor", ms }`; out: `{ perSecond, cpuUsPerCall, mainCpuUsPerCall,
 * longestTurnMs }` (CPU per call of the whole process and of its main thread alone; the longest
 * event-loop turn).
 *
 * - ours: `openVerifier({ db }).verify(key, { type: "secret", environment: "test" })`, the call a
 *   service makes (the README's recommended shape), every call a different key, awaited one by
 *   one, the event loop given a turn every 500 calls as a service would give it. Each round opens
 *   a verifier and ends with its `close()`, inside the timed span: every use the round counted
 *   is written within it, by the verifier's own timer or by the final write.
 * - floor: the least a service could do on the same file: SHA-256 by hand and one prepared
 *   indexed SELECT, walking the keys the same way.
 *
 * The last argument loads openVerifier from another build, to compare two versions of the code
 * side by side (see docs/benchmarks.md).
 */
import { hash } from "node:crypto";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import type { openVerifier as OpenVerifier } from "../src/verifier.js";

const [dbPath, keysPath, libPath] = process.argv.slice(2) as [string, string, string | undefined];
const { openVerifier } = (await import(libPath ? pathToFileURL(libPath).href : "../src/lib.js")) as { openVerifier: typeof OpenVerifier };
const plaintexts = readFileSync(keysPath, "utf8").trimEnd().split("\n");
const REQUIRED = { type: "secret", environment: "test" } as const;
/** A stride prime to every key count, so a walk visits each key once before it repeats any. */
const STRIDE = 7919;

const walks = { ours: 0, floor: 0 };
const next = (side: "ours" | "floor") => plaintexts[(walks[side]++ * STRIDE) % plaintexts.length]!;
const turn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * CPU time of this process's main thread in microseconds (clock ticks of /proc: 10 ms), to tell
 * the thread that verifies from any other the verifier runs.
 */
function mainThreadCpuUs(): number {
  const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

/**
 * Calls for `ms` milliseconds; the time and CPU of `finish` (closing, writing counts) included.
 * `longestTurnMs`: the longest the event loop's turns between batches took, which is how long
 * work the verifier does in the background (a timer's write of counts) held up everything else.
 */
async function timed(ms: number, once: () => unknown, finish: () => unknown) {
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const mainCpu = mainThreadCpuUs();
  let calls = 0;
  let longestTurn = 0n;
  while (Number(process.hrtime.bigint() - started) < ms * 1e6) {
    for (let j = 0; j < 500; j++) await once();
    calls += 500;
    const turnStarted = process.hrtime.bigint();
    await turn();
    const took = process.hrtime.bigint() - turnStarted;
    if (took > longestTurn) longestTurn = took;
  }
  await finish();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  return {
    perSecond: calls / seconds,
    cpuUsPerCall: (used.user + used.system) / calls,
    mainCpuUsPerCall: (mainThreadCpuUs() - mainCpu) / calls,
    longestTurnMs: Number(longestTurn) / 1e6,
  };
}

async function ours(ms: number) {
  const verifier = openVerifier({ db: dbPath });
  // Untimed: whatever the verifier starts in the background at open settles, as it would long
  // before a service's first request.
  await new Promise((resolve) => setTimeout(resolve, 200));
  return timed(
    ms,
    async () => {
      const result = await verifier.verify(next("ours"), REQUIRED);
      if (!result.valid) throw new Error(`verify answered ${result.code}`);
    },
    () => verifier.close(),
  );
}

// Opened once and kept: its cache stays warm, as a service's would, and it keeps the verifier's
// connections from being the file's last, whose close would checkpoint the whole WAL inside a
// timed round (a service closes its verifier once, at shutdown).
const db = new Database(dbPath, { readonly: true });
const lookup = db.prepare<[string], unknown>("SELECT key_id, tenant_id, expires_at, revoked_at FROM api_keys WHERE key_hash = ?");

function floor(ms: number) {
  return timed(
    ms,
    () => {
      if (lookup.get(hash("sha256", next("floor"), "hex")) === undefined) throw new Error("the floor found no key");
    },
    () => {},
  );
}

process.on("message", (message: { side: "ours" | "floor"; ms: number }) => {
  void (message.side === "ours" ? ours(message.ms) : floor(message.ms)).then(
    (result) => process.send!(result),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exit(1);
    },
  );
});
process.send!({ ready: true });
