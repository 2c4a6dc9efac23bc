/**
 * A/B of two builds' openVerifier on one seeded file, with the floor, in alternating rounds: what a
 * change to the verify path buys, measured side by side (docs/benchmarks.md records the results).
 *
 *   node dist/bench/compare-verify.js --base <other build>/dist/src/lib.js --db <file> --plaintexts <file> [--rounds 9]
 *
 * The file and its plaintexts come from bench/seed.js (`node dist/bench/seed.js <db> <count> <plaintexts> merchant_bench`).
 */
import { parseArgs } from "node:util";
import { median, spread } from "./stats.js";
import { VerifyWorker, type RoundResult } from "./verify.js";

const { values } = parseArgs({
  options: { base: { type: "string" }, db: { type: "string" }, plaintexts: { type: "string" }, rounds: { type: "string", default: "9" }, ms: { type: "string", default: "1000" } },
});
if (!values.base || !values.db || !values.plaintexts) {
  process.stderr.write("usage: compare-verify --base <lib.js> --db <file> --plaintexts <file> [--rounds 9] [--ms 1000]\n");
  process.exit(2);
}
const file = { keys: 0, path: values.db, keysFile: values.plaintexts, seedMs: 0 };
const before = new VerifyWorker(file, values.base);
const after = new VerifyWorker(file);
const results = { before: [] as RoundResult[], after: [] as RoundResult[], floor: [] as RoundResult[] };
try {
  await Promise.all([before.ready, after.ready]);
  for (let round = 0; round < Number(values.rounds); round++) {
    results.before.push(await before.round("ours", Number(values.ms)));
    results.after.push(await after.round("ours", Number(values.ms)));
    results.floor.push(await after.round("floor", Number(values.ms)));
  }
} finally {
  before.stop();
  after.stop();
}
const rate = (side: RoundResult[]) => median(side.map((r) => r.perSecond));
const cpu = (side: RoundResult[]) => median(side.map((r) => r.cpuUsPerCall));
const mainCpu = (side: RoundResult[]) => median(side.map((r) => r.mainCpuUsPerCall));
for (const [name, side] of Object.entries(results)) {
  const vsFloor = side.map((r, i) => r.perSecond / results.floor[i]!.perSecond);
  console.log(`${name.padEnd(7)} ${rate(side).toFixed(0).padStart(7)} /s  CPU/call ${cpu(side).toFixed(2).padStart(6)} µs (main thread ${mainCpu(side).toFixed(2).padStart(6)} µs)  vs floor ${median(vsFloor).toFixed(2)}× (${spread(vsFloor)})  longest turn ${Math.max(...side.map((r) => r.longestTurnMs)).toFixed(0)} ms`);
}
const gain = results.after.map((r, i) => r.perSecond / results.before[i]!.perSecond);
console.log(`after/before: ${median(gain).toFixed(2)}× (${spread(gain)})`);
