/**
 * What every measure of the benchmark shares: the seeded files, how to start our server and the
 * bare baseline over stdio, and small timing helpers. A measure is a `Section`; `run.ts` runs
 * them in order.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import Database from "better-sqlite3";
import { createCursorCodec } from "../src/store/cursor.js";

export const SERVER = fileURLToPath(new URL("../src/index.js", import.meta.url));
export const BASELINE = fileURLToPath(new URL("./baseline-server.js", import.meta.url));
export const TENANT = "merchant_bench";

export interface BenchFile {
  keys: number;
  path: string;
  /** The plaintexts, one per line, oldest first. */
  keysFile: string;
  seedMs: number;
}

export interface BenchContext {
  quick: boolean;
  dir: string;
  /** Seeded databases by key count, smallest first: 10k, 100k and 1M keys (100k only with --quick). */
  files: BenchFile[];
  /** A database with the current schema and no key. */
  emptyDb: string;
  /** A valid token for TENANT (read and write), for a measure that sends it itself (a bearer header). */
  token: string;
  /** Our server's environment on `dbPath`: the verification secret, `token`, rate limits out of the way. */
  serverEnv(dbPath: string): Record<string, string>;
}

export interface Section {
  name: string;
  /** Whether `--quick` runs it. */
  quick: boolean;
  run(ctx: BenchContext): Promise<void>;
}

export function fileWith(ctx: BenchContext, keys: number): BenchFile | undefined {
  return ctx.files.find((file) => file.keys === keys);
}

export const largest = (ctx: BenchContext): BenchFile => ctx.files.at(-1)!;

export interface Connected {
  client: Client;
  transport: StdioClientTransport;
  pid: number;
  close(): Promise<void>;
}

export async function connect(entry: string, env: Record<string, string>): Promise<Connected> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [entry], env, stderr: "ignore" });
  const client = new Client({ name: "bench", version: "0.0.0" });
  await client.connect(transport);
  return { client, transport, pid: transport.pid!, close: () => client.close() };
}

export async function call(client: Client, name: string, args: Record<string, unknown>): Promise<void> {
  const result = await client.callTool({ name, arguments: args });
  if (result.isError) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
}

/** Per-call latencies in microseconds of `count` sequential calls; `args(i)` gives each call's arguments. */
export async function latencies(client: Client, name: string, args: (i: number) => Record<string, unknown>, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    await call(client, name, args(i));
    samples.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  return samples;
}

/** Calls per second with `inFlight` calls outstanding at all times. */
export async function throughput(makeCall: (i: number) => Promise<void>, total: number, inFlight: number): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (next < total) await makeCall(next++);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return total / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** A field of /proc/<pid>/status in MB (VmRSS: resident now; VmHWM: the most it was). */
export function procStatusMb(pid: number, field: "VmRSS" | "VmHWM"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) / 1024;
}

/**
 * `count` key ids spread evenly over the file, in an order that jumps about: each call of a
 * measure reads a different key, from a different part of the indexes.
 */
export function sampleKeyIds(file: BenchFile, count: number): string[] {
  const db = new Database(file.path, { readonly: true });
  try {
    const select = db.prepare<[number], string>("SELECT key_id FROM api_keys WHERE seq = ?").pluck();
    const step = Math.max(1, Math.floor(file.keys / count));
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push(select.get(1 + ((i * 7919 * step) % file.keys))!);
    return ids;
  } finally {
    db.close();
  }
}

/** The cursor of `list_api_keys` `depth` keys into the tenant's newest-first list. */
export function cursorAt(file: BenchFile, depth: number): string {
  const db = new Database(file.path, { readonly: true });
  try {
    const seq = db.prepare("SELECT seq FROM api_keys ORDER BY seq DESC LIMIT 1 OFFSET ?").pluck().get(depth) as number;
    const cursors = createCursorCodec(db.prepare("SELECT value FROM store_meta WHERE name = 'cursor_key'").pluck().get() as Buffer);
    return cursors.encode("k", TENANT, [seq]);
  } finally {
    db.close();
  }
}

export function keysLabel(keys: number): string {
  return keys >= 1_000_000 ? `${keys / 1_000_000}M` : `${keys / 1000}k`;
}
