/**
 * `npm run bench`: our server and verifier against baselines doing the least possible for the
 * same work, side by side in one run, on databases of 10k, 100k and 1M real keys seeded for the
 * run. Prints a table of medians and ratios and exits 1 if a goal is missed. Timings are
 * wall-clock on whatever else the machine is doing; the goals are about ratios against a baseline
 * measured in the same rounds.
 *
 * A measure is a `Section` (bench/context.ts); a module of measures of its own adds its sections
 * to SECTIONS below and its rows through bench/report.ts.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { SignJWT } from "jose";
import { openDatabase } from "../src/store/sqlite/database.js";
import { keysLabel, TENANT, type BenchContext, type BenchFile, type Section } from "./context.js";
import { disk } from "./disk.js";
import { http } from "./http.js";
import { postgres } from "./postgres.js";
import { addNote, missedGoals, printReport } from "./report.js";
import { createThroughput, scale, serverMemory, startup, stdioRoundTrip } from "./stdio.js";
import { verifierMemory, verify } from "./verify.js";

/** In the order they run: the disk is measured on the file as seeded, the creates come last. */
export const SECTIONS: Section[] = [disk, startup, stdioRoundTrip, http, scale, verify, verifierMemory, serverMemory, postgres, createThroughput];

const SEED = fileURLToPath(new URL("./seed.js", import.meta.url));

const USAGE = `Usage: npm run bench -- [options]

Seeds databases of 10,000, 100,000 and 1,000,000 real keys in a temporary folder, measures the
server and openVerifier against bare baselines in alternating rounds, prints a table of ratios
and exits 1 if a goal is missed. 3–6 minutes on two cores, a minute of it seeding.

Options:
  --quick          the 100,000-key file only, fewer rounds: under a minute
  --only <names>   run only these measures, comma-separated: ${SECTIONS.map((section) => section.name).join(", ")}
  -h, --help       show this help
`;

async function main(): Promise<number> {
  let values: { quick: boolean; only?: string; help: boolean };
  try {
    ({ values } = parseArgs({
      options: { quick: { type: "boolean", default: false }, only: { type: "string" }, help: { type: "boolean", short: "h", default: false } },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const only = values.only?.split(",").map((name) => name.trim());
  const unknown = only?.filter((name) => !SECTIONS.some((section) => section.name === name)) ?? [];
  if (unknown.length > 0) {
    process.stderr.write(`unknown measure: ${unknown.join(", ")}\n\n${USAGE}`);
    return 2;
  }
  const quick = values.quick;
  const sections = SECTIONS.filter((section) => (only ? only.includes(section.name) : !quick || section.quick));

  const dir = mkdtempSync(join(tmpdir(), "api-keys-mcp-bench-"));
  try {
    const files: BenchFile[] = [];
    for (const keys of quick ? [100_000] : [10_000, 100_000, 1_000_000]) {
      const file = { keys, path: join(dir, `keys-${keysLabel(keys)}.db`), keysFile: join(dir, `keys-${keysLabel(keys)}.txt`) };
      process.stderr.write(`seeding ${keys.toLocaleString("en")} keys… `);
      const seeded = JSON.parse(execFileSync(process.execPath, [SEED, file.path, String(keys), file.keysFile, TENANT], { encoding: "utf8" })) as { ms: number };
      process.stderr.write(`${(seeded.ms / 1000).toFixed(1)} s\n`);
      files.push({ ...file, seedMs: seeded.ms });
    }
    addNote(
      `Seeded for this run (one transaction each; every key with its audit row and a usage row): ` +
        files.map((file) => `${file.keys.toLocaleString("en")} keys in ${(file.seedMs / 1000).toFixed(1)} s`).join(", ") +
        ".",
    );
    const emptyDb = join(dir, "empty.db");
    openDatabase(emptyDb).close();

    const secret = randomBytes(32).toString("base64url");
    const token = await new SignJWT({ merchant_id: TENANT, scope: "api_keys:read api_keys:write" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("bench")
      .setExpirationTime("2h")
      .sign(new TextEncoder().encode(secret));
    const ctx: BenchContext = {
      quick,
      dir,
      files,
      emptyDb,
      token,
      serverEnv: (dbPath) => ({
        API_KEYS_MCP_JWT_SECRET: secret,
        API_KEYS_MCP_TOKEN: token,
        API_KEYS_MCP_DB: dbPath,
        API_KEYS_MCP_RATE_LIMIT_READ: "1000000",
        API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000",
      }),
    };
    for (const section of sections) {
      const started = Date.now();
      process.stderr.write(`${section.name}… `);
      await section.run(ctx);
      process.stderr.write(`${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    }
    printReport(quick ? "api-keys-mcp benchmark (--quick)" : "api-keys-mcp benchmark");
    return missedGoals().length > 0 ? 1 : 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
