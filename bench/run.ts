/**
 * `npm run bench`: our server against baselines doing the least possible for the same work,
 * side by side in one run. Prints a table of medians and ratios and exits 1 if a goal is missed.
 * Timings are wall-clock on whatever else the machine is doing; ratios against a baseline measured
 * in the same rounds are what the goals are about.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import Database from "better-sqlite3";
import { SignJWT } from "jose";
import { createCursorCodec } from "../src/store/cursor.js";
import { benchHttp } from "./http.js";
import { seedKeys } from "./seed.js";
import { median, percentile } from "./stats.js";

const SERVER = fileURLToPath(new URL("../src/index.js", import.meta.url));
const BASELINE = fileURLToPath(new URL("./baseline-server.js", import.meta.url));
const VERIFY_WORKER = fileURLToPath(new URL("./verify-worker.js", import.meta.url));
const LIST_KEYS = 100_000;
/** Alternating rounds per measure: many short rounds, so that drift in the machine hits both sides alike. */
const ROUNDS = 15;

interface Row {
  measure: string;
  ours: string;
  baseline: string;
  ratio: number;
  goal: string;
  met: boolean;
}
const rows: Row[] = [];
const fmt = (n: number, unit: string) => `${n >= 100 ? Math.round(n) : n.toPrecision(3)} ${unit}`;

async function connect(entry: string, env: Record<string, string>): Promise<{ client: Client; transport: StdioClientTransport }> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [entry], env, stderr: "ignore" });
  const client = new Client({ name: "bench", version: "0.0.0" });
  await client.connect(transport);
  return { client, transport };
}

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<void> {
  const result = await client.callTool({ name, arguments: args });
  if (result.isError) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
}

/** Per-call latencies in microseconds for `count` sequential calls. */
async function latencies(client: Client, name: string, args: Record<string, unknown>, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    await call(client, name, args);
    samples.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  return samples;
}

/** Calls per second with `inFlight` calls outstanding at all times. */
async function throughput(makeCall: (i: number) => Promise<void>, total: number, inFlight: number): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (next < total) await makeCall(next++);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return total / (Number(process.hrtime.bigint() - started) / 1e9);
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "api-keys-mcp-bench-"));
  try {
    const secret = randomBytes(32).toString("base64url");
    const token = await new SignJWT({ merchant_id: "merchant_bench", scope: "api_keys:read api_keys:write" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("bench")
      .setExpirationTime("2h")
      .sign(new TextEncoder().encode(secret));
    const dbPath = join(dir, "keys.db");
    process.stderr.write(`seeding ${LIST_KEYS} keys… `);
    const plaintexts = seedKeys(dbPath, "merchant_bench", LIST_KEYS, Date.UTC(2026, 0, 1));
    process.stderr.write("done\n");
    const env = {
      API_KEYS_MCP_JWT_SECRET: secret,
      API_KEYS_MCP_TOKEN: token,
      API_KEYS_MCP_DB: dbPath,
      API_KEYS_MCP_RATE_LIMIT_READ: "1000000",
      API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000",
    };

    // Start-up: spawn to `initialize` answered, alternating so drift hits both alike.
    const startOurs: number[] = [];
    const startBase: number[] = [];
    for (let i = 0; i < 12; i++) {
      for (const [entry, samples, entryEnv] of [[SERVER, startOurs, env], [BASELINE, startBase, {}]] as const) {
        const started = process.hrtime.bigint();
        const { client } = await connect(entry, entryEnv);
        samples.push(Number(process.hrtime.bigint() - started) / 1e6);
        await client.close();
      }
    }
    addRow("start-up: spawn to initialize answered (median)", median(startOurs), median(startBase), "ms", 1.5, "≤");

    const ours = await connect(SERVER, env);
    const base = await connect(BASELINE, {});
    const db = new Database(dbPath, { readonly: true });
    const keyId = db.prepare("SELECT key_id FROM api_keys ORDER BY seq DESC LIMIT 1").pluck().get() as string;
    // A cursor 99,000 keys deep: the page after it is near the oldest end of the list.
    const deepSeq = db.prepare("SELECT seq FROM api_keys ORDER BY seq DESC LIMIT 1 OFFSET 99000").pluck().get() as number;
    const cursors = createCursorCodec(db.prepare("SELECT value FROM store_meta WHERE name = 'cursor_key'").pluck().get() as Buffer);
    db.close();

    // get_api_key round trip against the no-op tool of the same shape, in alternating rounds.
    const getOurs: number[] = [];
    const getBase: number[] = [];
    await latencies(ours.client, "get_api_key", { key_id: keyId }, 300);
    await latencies(base.client, "noop", { key_id: keyId }, 300);
    for (let round = 0; round < ROUNDS; round++) {
      getOurs.push(...(await latencies(ours.client, "get_api_key", { key_id: keyId }, 200)));
      getBase.push(...(await latencies(base.client, "noop", { key_id: keyId }, 200)));
    }
    addRow("get_api_key round trip over stdio, p50", percentile(getOurs, 50), percentile(getBase, 50), "µs", 1.3, "≤");
    addRow("get_api_key round trip over stdio, p99", percentile(getOurs, 99), percentile(getBase, 99), "µs", undefined, "≤");

    // Streamable HTTP (bench/http.ts); the token travels as the bearer, never in the environment.
    const { API_KEYS_MCP_TOKEN: _operatorToken, ...httpEnv } = env;
    await benchHttp({ env: httpEnv, token, keyId, rounds: ROUNDS, addRow });

    // list_api_keys: a page deep in the list against the first page.
    const firstPage: number[] = [];
    const deepPage: number[] = [];
    const deep = { limit: 20, cursor: cursors.encode("k", "merchant_bench", [deepSeq]) };
    for (let round = 0; round < ROUNDS; round++) {
      firstPage.push(...(await latencies(ours.client, "list_api_keys", { limit: 20 }, 100)));
      deepPage.push(...(await latencies(ours.client, "list_api_keys", deep, 100)));
    }
    addRow(`list_api_keys page 99,000 keys deep vs first page, p50`, percentile(deepPage, 50), percentile(firstPage, 50), "µs", 1.5, "≤");

    // openVerifier().verify in-process against SHA-256 + one prepared indexed SELECT, in a child
    // process so that its memory is the verifier's; before the creates, so the file holds the
    // 100,000 seeded keys only.
    const keysFile = join(dir, "plaintexts.txt");
    writeFileSync(keysFile, plaintexts.join("\n"));
    const verify = JSON.parse(execFileSync(process.execPath, [VERIFY_WORKER, dbPath, keysFile], { encoding: "utf8" })) as {
      ours: number[];
      baseline: number[];
      rssMb: number;
    };
    addRow("openVerifier().verify per second, in-process, 100k keys", median(verify.ours), median(verify.baseline), "/s", 0.7, "≥");

    // create_api_key throughput with 16 calls in flight, against no-op calls. Last, because it
    // adds 15,000 keys: the list and verify measures above see the seeded 100,000 only.
    const createOurs: number[] = [];
    const createBase: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      createOurs.push(await throughput((i) => call(ours.client, "create_api_key", { name: `bench ${round}-${i}` }), 1000, 16));
      createBase.push(await throughput(() => call(base.client, "noop", { key_id: keyId }), 1000, 16));
    }
    addRow("create_api_key calls/s, 16 in flight", median(createOurs), median(createBase), "/s", 0.5, "≥");

    const serverRss = rssMb(ours.transport.pid!);
    await ours.client.close();
    await base.client.close();

    rows.push({ measure: "server resident memory after the run", ours: fmt(serverRss, "MB"), baseline: "—", ratio: NaN, goal: "< 150 MB", met: serverRss < 150 });
    rows.push({ measure: "verifier process resident memory after the run", ours: fmt(verify.rssMb, "MB"), baseline: "—", ratio: NaN, goal: "< 150 MB", met: verify.rssMb < 150 });

    print();
    if (rows.some((row) => !row.met)) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function addRow(measure: string, ours: number, baseline: number, unit: string, goal: number | undefined, sense: "≤" | "≥"): void {
  const ratio = ours / baseline;
  const met = goal === undefined || (sense === "≤" ? ratio <= goal : ratio >= goal);
  rows.push({ measure, ours: fmt(ours, unit), baseline: fmt(baseline, unit), ratio, goal: goal === undefined ? "(reported)" : `${sense} ${goal}×`, met });
}

function print(): void {
  const lines = [
    `api-keys-mcp benchmark — ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "CPU"}`,
    "",
    "| Measure | Ours | Baseline | Ratio | Goal | Met |",
    "|---|---|---|---|---|---|",
    ...rows.map((row) => `| ${row.measure} | ${row.ours} | ${row.baseline} | ${Number.isNaN(row.ratio) ? "—" : `${row.ratio.toFixed(2)}×`} | ${row.goal} | ${row.met ? "yes" : "**NO**"} |`),
  ];
  console.log(lines.join("\n"));
}

await main();
