import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { generateRsaKeyPairs, RSA_KEY_PAIRS } from "./key-pairs.js";
import { startPostgresServer } from "./postgres-server.js";
import type {} from "./postgres.js";

const ROOT = new URL("../..", import.meta.url).pathname;
/** Everything the build reads, and the record of the last one; the fingerprint covers them all. */
const BUILD_INPUTS = ["tsconfig.json", "package.json", "package-lock.json", "src", "tools", "scripts", "bench", "dist/.tsbuildinfo"];
const FINGERPRINT = join(ROOT, "dist", ".test-build-fingerprint");

/**
 * Builds dist/ before any suite runs, so tests that spawn the server never run an old build.
 * An incremental tsc that finds nothing to do still takes about two seconds, before any test
 * can start; so when the sources and tsc's own record of its last build are byte for byte what
 * they were after the build this setup last ran or checked, tsc is skipped. The run's RSA key
 * pairs are made meanwhile, on other threads, and the run's PostgreSQL server is started, which
 * the PostgreSQL suites share (each in databases of its own). They are never skipped: if
 * PostgreSQL cannot start, the run fails here.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const keyPairs = generateRsaKeyPairs(RSA_KEY_PAIRS);
  const postgres = startPostgresServer();
  const before = fingerprint();
  if (!existsSync(FINGERPRINT) || readFileSync(FINGERPRINT, "utf8") !== before || !existsSync(join(ROOT, "dist/src/index.js"))) {
    const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
    const build = spawn(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: ROOT, stdio: "inherit" });
    const [code] = (await once(build, "exit")) as [number | null];
    if (code !== 0) throw new Error(`the build failed (tsc exited with ${code})`);
    writeFileSync(FINGERPRINT, fingerprint());
  }
  project.provide("rsaKeyPairs", await keyPairs);
  const server = await postgres;
  project.provide("postgresAdminUrl", server.adminUrl);
  return () => server.remove();
}

/** A hash of the paths and contents of every file under BUILD_INPUTS (a missing one counts too). */
function fingerprint(): string {
  const hash = createHash("sha256");
  const add = (path: string) => {
    const full = join(ROOT, path);
    const stat = statSync(full, { throwIfNoEntry: false });
    if (stat === undefined) hash.update(`missing ${path}\0`);
    else if (stat.isDirectory()) for (const name of readdirSync(full).sort()) add(join(path, name));
    else hash.update(`file ${path}\0`).update(readFileSync(full)).update("\0");
  };
  for (const input of BUILD_INPUTS) add(input);
  return hash.digest("hex");
}
