/**
 * openVerifier().verify in-process: against the hand-written floor on the same file, at each
 * size against 10k, and the verifier's own memory. One worker process per file (bench/
 * verify-worker.ts) keeps its file's plaintexts; rounds alternate over files and sides.
 */
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { addNote, addRatioRow, addValueRow, fmt } from "./report.js";
import { keysLabel, type BenchFile, type Section } from "./context.js";
import { median, spread } from "./stats.js";

const VERIFY_WORKER = fileURLToPath(new URL("./verify-worker.js", import.meta.url));
const VERIFIER_MEMORY = fileURLToPath(new URL("./verifier-memory.js", import.meta.url));

export interface RoundResult {
  perSecond: number;
  /** CPU per call, all threads of the worker process. */
  cpuUsPerCall: number;
  /** CPU per call of the thread that verifies. */
  mainCpuUsPerCall: number;
  /** The longest event-loop turn between batches of calls. */
  longestTurnMs: number;
}

/** A verify-worker process on one file; `lib` loads openVerifier from another build. */
export class VerifyWorker {
  readonly #child: ChildProcess;
  readonly ready: Promise<void>;

  constructor(readonly file: BenchFile, lib?: string) {
    this.#child = fork(VERIFY_WORKER, [file.path, file.keysFile, ...(lib ? [lib] : [])], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
    this.ready = new Promise((resolve, reject) => {
      this.#child.once("message", () => resolve());
      this.#child.once("exit", (code) => reject(new Error(`verify worker exited with ${code}`)));
    });
  }

  round(side: "ours" | "floor", ms: number): Promise<RoundResult> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`verify worker exited with ${code}`));
      this.#child.once("exit", onExit);
      this.#child.once("message", (result: RoundResult) => {
        this.#child.off("exit", onExit);
        resolve(result);
      });
      this.#child.send({ side, ms });
    });
  }

  stop(): void {
    this.#child.kill();
  }
}

/** Rounds per side and file, and their length. */
const ROUNDS = 7;
const ROUND_MS = 1000;

export const verify: Section = {
  name: "verify",
  quick: true,
  async run(ctx) {
    const workers = ctx.files.map((file) => new VerifyWorker(file));
    const results = new Map(workers.map((worker) => [worker.file.keys, { ours: [] as RoundResult[], floor: [] as RoundResult[] }]));
    try {
      await Promise.all(workers.map((worker) => worker.ready));
      for (let round = 0; round < (ctx.quick ? 5 : ROUNDS); round++) {
        for (const worker of workers) {
          const result = results.get(worker.file.keys)!;
          result.ours.push(await worker.round("ours", ROUND_MS));
          result.floor.push(await worker.round("floor", ROUND_MS));
        }
      }
    } finally {
      for (const worker of workers) worker.stop();
    }

    const rate = (rounds: RoundResult[]) => median(rounds.map((r) => r.perSecond));
    const cpu = (rounds: RoundResult[]) => median(rounds.map((r) => r.cpuUsPerCall));
    const mainCpu = (rounds: RoundResult[]) => median(rounds.map((r) => r.mainCpuUsPerCall));
    for (const keys of [100_000, 1_000_000]) {
      const result = results.get(keys);
      if (!result) continue;
      addRatioRow(
        `openVerifier().verify per second, ${keysLabel(keys)} keys, a different key each call, usage writes in the rounds, vs SHA-256 + one prepared SELECT`,
        rate(result.ours),
        rate(result.floor),
        "/s",
        0.7,
        "≥",
      );
      addRatioRow(
        `  longest event-loop turn in those rounds (work the verifier does between calls, such as writing counts)`,
        Math.max(...result.ours.map((r) => r.longestTurnMs)),
        Math.max(...result.floor.map((r) => r.longestTurnMs)),
        "ms",
        undefined,
        "≤",
      );
      addNote(
        `verify, ${keysLabel(keys)} keys: per-round ratios ${spread(result.ours.map((r, i) => r.perSecond / result.floor[i]!.perSecond))}; ` +
          `CPU per call ${fmt(cpu(result.ours), "µs")} ours (${fmt(mainCpu(result.ours), "µs")} on the verifying thread), ${fmt(cpu(result.floor), "µs")} floor.`,
      );
    }
    const small = results.get(10_000);
    if (small) {
      for (const [keys, result] of results) {
        if (keys === 10_000) continue;
        addRatioRow(`openVerifier().verify per second, ${keysLabel(keys)} keys vs 10k (within 1.3×)`, rate(result.ours), rate(small.ours), "/s", 1 / 1.3, "≥");
        addRatioRow(`  the floor per second, ${keysLabel(keys)} keys vs 10k, for comparison`, rate(result.floor), rate(small.floor), "/s", undefined, "≥");
      }
    }
  },
};

/**
 * Resident memory of a process verifying as a service does (all the file's plaintexts in memory),
 * minus that of a process holding the same plaintexts: the verifier's own cost. On the 100k file,
 * and on the 1M file unless --quick; three pairs (two with --quick), alternating; medians.
 */
export const verifierMemory: Section = {
  name: "verifier-memory",
  quick: true,
  async run(ctx) {
    for (const file of ctx.files.filter((candidate) => candidate.keys >= 100_000)) {
      const ours: number[] = [];
      const base: number[] = [];
      const peak: number[] = [];
      const run = (mode: string) =>
        JSON.parse(execFileSync(process.execPath, [VERIFIER_MEMORY, mode, file.path, file.keysFile, ctx.quick ? "2000" : "4000"], { encoding: "utf8" })) as {
          rssMb: number;
          hwmMb: number;
        };
      for (let i = 0; i < (ctx.quick ? 2 : 3); i++) {
        const verifier = run("verifier");
        ours.push(verifier.rssMb);
        peak.push(verifier.hwmMb);
        base.push(run("baseline").rssMb);
      }
      const extra = median(ours) - median(base);
      addValueRow(
        `verifier process resident memory minus a process holding the same ${keysLabel(file.keys)} plaintexts`,
        `+${fmt(extra, "MB")} (${fmt(median(ours), "MB")}, peak ${fmt(median(peak), "MB")})`,
        fmt(median(base), "MB"),
        "≤ +40 MB",
        extra <= 40,
      );
    }
  },
};
