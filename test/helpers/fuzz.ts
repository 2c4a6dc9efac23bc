import type { Parameters } from "fast-check";

/** The seed CI runs with, so a failure there replays exactly. */
export const FIXED_SEED = 20_260_505;

/**
 * fast-check parameters for a property. By default a fixed seed, so runs are deterministic.
 * Locally, `FUZZ_SEED=random npm test` explores new inputs (fast-check prints the seed and the
 * shrunk counterexample on failure) and `FUZZ_SEED=<n>` replays one; `FUZZ_RUNS_FACTOR=10`
 * tries ten times as many inputs.
 */
export function fuzzParameters<T>(numRuns: number): Parameters<T> {
  const setting = process.env.FUZZ_SEED;
  const seed = setting === undefined || setting === "" ? FIXED_SEED : setting === "random" ? randomSeed() : Number(setting);
  if (!Number.isSafeInteger(seed)) throw new Error("FUZZ_SEED must be an integer or 'random'");
  const factor = Number(process.env.FUZZ_RUNS_FACTOR ?? "1");
  return { seed, numRuns: Math.max(1, Math.round(numRuns * (Number.isFinite(factor) && factor > 0 ? factor : 1))) };
}

function randomSeed(): number {
  return Math.floor(Math.random() * 0x7fffffff);
}
