import type { Parameters } from "fast-check";

/** The seed CI runs with, so a failure there replays exactly. */
export const FIXED_SEED = 20_260_505;

/**
 * The seed of this test run: FIXED_SEED by default, so runs are deterministic. Locally,
 * `FUZZ_SEED=random npm test` explores new inputs (fast-check prints the seed and the shrunk
 * counterexample on failure) and `FUZZ_SEED=<n>` replays one. Read once, so every property of
 * a run (and the figures it reports) shares it.
 */
export const FUZZ_SEED = resolveSeed(process.env.FUZZ_SEED);

function resolveSeed(setting: string | undefined): number {
  if (setting === undefined || setting === "") return FIXED_SEED;
  const seed = setting === "random" ? Math.floor(Math.random() * 0x7fffffff) : Number(setting);
  if (!Number.isSafeInteger(seed)) throw new Error("FUZZ_SEED must be an integer or 'random'");
  return seed;
}

const factorSetting = Number(process.env.FUZZ_RUNS_FACTOR ?? "1");
/** `FUZZ_RUNS_FACTOR=10` tries ten times as many inputs. */
const RUNS_FACTOR = Number.isFinite(factorSetting) && factorSetting > 0 ? factorSetting : 1;

/** fast-check parameters for a property: the run's seed and `numRuns` times the runs factor. */
export function fuzzParameters<T>(numRuns: number): Parameters<T> {
  return { seed: FUZZ_SEED, numRuns: Math.max(1, Math.round(numRuns * RUNS_FACTOR)) };
}

/** A test timeout that grows with the runs factor. */
export function fuzzTimeout(ms: number): number {
  return Math.round(ms * Math.max(1, RUNS_FACTOR));
}
