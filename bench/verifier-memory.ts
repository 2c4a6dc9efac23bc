/**
 * The verifier's own memory: a process that verifies as a service does, against a process that
 * only holds the same plaintexts. The difference in resident memory is what the verifier costs.
 *
 *   node verifier-memory.js verifier <db> <plaintexts file> <ms>
 *   node verifier-memory.js baseline <db> <plaintexts file> <ms>
 *
 * Prints `{ rssMb, hwmMb }` as JSON: resident memory at the end (the verifier still open), and the
 * most it ever was.
 */
import { readFileSync } from "node:fs";
import { openVerifier } from "../src/lib.js";

const [mode, dbPath, keysPath, ms] = process.argv.slice(2) as ["verifier" | "baseline", string, string, string];
const plaintexts = readFileSync(keysPath, "utf8").trimEnd().split("\n");

function statusMb(field: string): number {
  const status = readFileSync("/proc/self/status", "utf8");
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) / 1024;
}

/** Where the memory is, in MB: V8's heap (its size and what is live in it), and outside it. */
function heap() {
  const usage = process.memoryUsage();
  const mb = (bytes: number) => Math.round(bytes / 104857.6) / 10;
  return { heapTotalMb: mb(usage.heapTotal), heapUsedMb: mb(usage.heapUsed), externalMb: mb(usage.external), anonMb: statusMb("RssAnon"), fileMb: statusMb("RssFile") };
}

let touched = 0;
for (const key of plaintexts) touched += key.length;
if (touched === 0) throw new Error("no plaintexts");

if (mode === "verifier") {
  const verifier = openVerifier({ db: dbPath });
  const required = { type: "secret", environment: "test" } as const;
  const started = Date.now();
  let i = 0;
  while (Date.now() - started < Number(ms)) {
    for (let j = 0; j < 500; j++, i++) {
      const result = await verifier.verify(plaintexts[(i * 7919) % plaintexts.length]!, required);
      if (!result.valid) throw new Error(`verify answered ${result.code}`);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  process.stdout.write(JSON.stringify({ rssMb: statusMb("VmRSS"), hwmMb: statusMb("VmHWM"), calls: i, ...heap() }));
  await verifier.close();
} else {
  process.stdout.write(JSON.stringify({ rssMb: statusMb("VmRSS"), hwmMb: statusMb("VmHWM"), calls: 0, ...heap() }));
}
