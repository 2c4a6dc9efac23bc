import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";

/**
 * Builds dist/ before any suite runs, so tests that spawn the server never run an old build.
 * tsc is incremental: when nothing changed this takes about a second.
 */
export default function setup(): void {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", "tsconfig.json"], { stdio: "inherit" });
}
