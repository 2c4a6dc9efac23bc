import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import type { TestProject } from "vitest/node";
import { startPostgresServer } from "./postgres-server.js";
import type {} from "./postgres.js";

/**
 * Before any suite runs: builds dist/, so tests that spawn the server never run an old build
 * (tsc is incremental: when nothing changed this takes about a second), and starts the run's
 * PostgreSQL server, which the PostgreSQL suites share (each in databases of its own). They are
 * never skipped: if PostgreSQL cannot start, the run fails here.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", "tsconfig.json"], { stdio: "inherit" });
  const postgres = await startPostgresServer();
  project.provide("postgresAdminUrl", postgres.adminUrl);
  return () => postgres.remove();
}
