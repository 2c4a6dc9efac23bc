import { spawn } from "node:child_process";
import { once } from "node:events";
import { createRequire } from "node:module";
import type { TestProject } from "vitest/node";
import { generateRsaKeyPairs, RSA_KEY_PAIRS } from "./key-pairs.js";

/**
 * Builds dist/ before any suite runs, so tests that spawn the server never run an old build.
 * tsc is incremental: when nothing changed this takes about two seconds. The run's RSA key
 * pairs are made meanwhile, on other threads.
 */
export default async function setup(project: TestProject): Promise<void> {
  const keyPairs = generateRsaKeyPairs(RSA_KEY_PAIRS);
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const build = spawn(process.execPath, [tsc, "-p", "tsconfig.json"], { stdio: "inherit" });
  const [code] = (await once(build, "exit")) as [number | null];
  if (code !== 0) throw new Error(`the build failed (tsc exited with ${code})`);
  project.provide("rsaKeyPairs", await keyPairs);
}
