/**
 * The HTTP measures of `npm run bench`: `serve --http` against a bare SDK stateless HTTP server
 * (bench/baseline-http-server.ts), both spawned, called over kept-alive connections in
 * alternating rounds.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { Agent, request } from "node:http";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { fileWith, sampleKeyIds, type Section } from "./context.js";
import { addRatioRow } from "./report.js";
import { median, percentile } from "./stats.js";

const SERVER = fileURLToPath(new URL("../src/index.js", import.meta.url));
const BASELINE = fileURLToPath(new URL("./baseline-http-server.js", import.meta.url));
const CONCURRENT_CLIENTS = 16;

export interface HttpBenchOptions {
  /** The environment our server runs with (verification key, database, raised rate limits). */
  env: Record<string, string>;
  /** A token for `Authorization: Bearer`. */
  token: string;
  /** A key of the token's tenant, fetched by get_api_key. */
  keyId: string;
  rounds: number;
  addRow: (measure: string, ours: number, baseline: number, unit: string, goal: number | undefined, sense: "≤" | "≥") => void;
}

/** Spawns `entry` and resolves with its /mcp URL, read from the line `pick` finds it in. */
async function start(entry: string, args: string[], env: Record<string, string>, stream: "stdout" | "stderr", pick: (line: string) => string | undefined) {
  const child = spawn(process.execPath, [entry, ...args], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const lines = createInterface({ input: child[stream]! });
  for await (const line of lines) {
    const url = pick(line);
    if (url) {
      // Keep draining the stream so the child never blocks on a full pipe.
      lines.on("line", () => undefined);
      return { child, url };
    }
  }
  throw new Error(`${entry} exited before naming its URL`);
}

/**
 * A minimal MCP client over one kept-alive connection: a `tools/call` POST with a body written
 * once, its JSON answer checked. Stateless servers answer a call without `initialize`. Leaner
 * than the SDK's Client (whose own work per call would dominate, and hide the servers' cost,
 * when 16 of them share the benchmark's process).
 */
interface RawClient {
  call(): Promise<void>;
  close(): void;
}

function rawClient(url: string, tool: string, args: Record<string, unknown>, token?: string): RawClient {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: args } });
  const headers = {
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
    "Content-Length": String(Buffer.byteLength(body)),
    ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }),
  };
  return {
    call: () =>
      new Promise<void>((resolve, reject) => {
        const req = request(url, { method: "POST", headers, agent }, (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => (text += chunk));
          res.on("end", () => {
            const answer = res.statusCode === 200 ? (JSON.parse(text) as { result?: { isError?: boolean } }) : undefined;
            if (!answer?.result || answer.result.isError) reject(new Error(`${tool} failed: ${res.statusCode} ${text.slice(0, 300)}`));
            else resolve();
          });
        });
        req.on("error", reject);
        req.end(body);
      }),
    close: () => agent.destroy(),
  };
}

async function latencies(client: RawClient, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    await client.call();
    samples.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  return samples;
}

/** Calls per second with every client calling in a loop until `total` calls are done. */
async function throughput(clients: RawClient[], total: number): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    clients.map(async (client) => {
      while (next++ < total) await client.call();
    }),
  );
  return total / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  await exited;
}

export async function benchHttp({ env, token, keyId, rounds, addRow }: HttpBenchOptions): Promise<void> {
  const ours = await start(SERVER, ["serve", "--http", "--port", "0"], env, "stderr", (line) => {
    const record = JSON.parse(line) as { msg?: string; url?: string };
    return record.msg === "server_started" ? record.url : undefined;
  });
  const base = await start(BASELINE, [], {}, "stdout", (line) => (line.startsWith("http://") ? line.trim() : undefined));
  try {
    const args = { key_id: keyId };
    const oursClient = rawClient(ours.url, "get_api_key", args, token);
    const baseClient = rawClient(base.url, "noop", args);
    await latencies(oursClient, 300);
    await latencies(baseClient, 300);
    const getOurs: number[] = [];
    const getBase: number[] = [];
    for (let round = 0; round < rounds; round++) {
      getOurs.push(...(await latencies(oursClient, 200)));
      getBase.push(...(await latencies(baseClient, 200)));
    }
    addRow("get_api_key round trip over HTTP (keep-alive), p50", percentile(getOurs, 50), percentile(getBase, 50), "µs", 1.3, "≤");
    addRow("get_api_key round trip over HTTP (keep-alive), p99", percentile(getOurs, 99), percentile(getBase, 99), "µs", undefined, "≤");

    const oursClients = Array.from({ length: CONCURRENT_CLIENTS }, () => rawClient(ours.url, "get_api_key", args, token));
    const baseClients = Array.from({ length: CONCURRENT_CLIENTS }, () => rawClient(base.url, "noop", args));
    const rateOurs: number[] = [];
    const rateBase: number[] = [];
    for (let round = 0; round < rounds; round++) {
      rateOurs.push(await throughput(oursClients, 1000));
      rateBase.push(await throughput(baseClients, 1000));
    }
    addRow(`get_api_key calls/s over HTTP, ${CONCURRENT_CLIENTS} concurrent clients`, median(rateOurs), median(rateBase), "/s", 0.5, "≥");
    for (const client of [oursClient, baseClient, ...oursClients, ...baseClients]) client.close();
  } finally {
    await Promise.all([stop(ours.child), stop(base.child)]);
  }
}

/** The HTTP section of `npm run bench`, on the run's 100k-key file. */
export const http: Section = {
  name: "http",
  // Not in --quick: it starts servers of its own, and --quick must stay under a minute.
  quick: false,
  async run(ctx) {
    const file = fileWith(ctx, 100_000) ?? ctx.files[0]!;
    // Over HTTP the token travels in the bearer header, never from the environment.
    const { API_KEYS_MCP_TOKEN: _unused, ...env } = ctx.serverEnv(file.path);
    await benchHttp({ env, token: ctx.token, keyId: sampleKeyIds(file, 1)[0]!, rounds: ctx.quick ? 5 : 15, addRow: addRatioRow });
  },
};
