import { readFileSync } from "node:fs";
import { request } from "node:http";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type Database from "better-sqlite3";
import { DEFAULT_JWKS_TIMINGS } from "../../src/auth/verifier.js";
import { loadConfig, loadHttpConfig, withResourceAudience } from "../../src/config.js";
import { AppError } from "../../src/errors.js";
import type { HttpTimeouts } from "../../src/http/listen.js";
import { startHttpServer } from "../../src/http/serve-http.js";
import { createLogger } from "../../src/log.js";
import { createServices } from "../../src/services.js";
import { openDatabase } from "../../src/store/sqlite/database.js";
import { callTool, testClock, type CallOutcome, type TestClock } from "./server.js";
import { TEST_SECRET } from "./tokens.js";

export interface HttpTestServer {
  /** The URL of /mcp. */
  url: string;
  /** Scheme, host and port: for the other paths. */
  origin: string;
  db: Database.Database | null;
  clock: TestClock;
  logs: Record<string, unknown>[];
  rawLogs: string[];
  /** A real MCP client over Streamable HTTP, sending `token` as the bearer (none when undefined). */
  connect(token: string | undefined): Promise<Client>;
  /** Connects, calls one tool, and closes. */
  call(token: string, name: string, args?: Record<string, unknown>): Promise<CallOutcome>;
  close(): Promise<void>;
}

/**
 * The real HTTP server (config, services, SQLite, jose, Express, the SDK's transport) listening on
 * 127.0.0.1 with a free port, in this process. `env` is read as the server would read it.
 */
export async function startHttpTestServer(
  options: { env?: Record<string, string | undefined>; clock?: TestClock; timeouts?: HttpTimeouts } = {},
): Promise<HttpTestServer> {
  const clock = options.clock ?? testClock();
  // An in-memory SQLite database, unless the test names a store of its own (a PostgreSQL URL).
  const store = options.env?.API_KEYS_MCP_DATABASE_URL === undefined ? { API_KEYS_MCP_DB: ":memory:" } : {};
  const env = { API_KEYS_MCP_JWT_SECRET: TEST_SECRET, ...store, ...options.env };
  const { config, problems } = loadConfig({ env, platform: "linux", homedir: "/nonexistent-home", readFile: (p) => readFileSync(p, "utf8") });
  const { http, problems: httpProblems } = loadHttpConfig(env, { host: "127.0.0.1", port: "0" });
  if (httpProblems.length > 0) throw new Error(httpProblems.map((problem) => problem.message).join("; "));
  const rawLogs: string[] = [];
  const logger = createLogger({ level: "debug", write: (line) => rawLogs.push(line), clock });
  let db: Database.Database | null = null;
  const auth = config.auth && withResourceAudience(config.auth, http.resourceUrl);
  const services = createServices({
    config: { ...config, auth },
    problems,
    logger,
    clock,
    openDb: (path) => (db = openDatabase(path)),
    jwks: { ...DEFAULT_JWKS_TIMINGS, cooldownMs: 0 },
  });
  const server = await startHttpServer({ services, logger, version: "0.0.0-test", http, clock, timeouts: options.timeouts });
  const clients = new Set<Client>();

  const connect = async (token: string | undefined) => {
    const transport = new StreamableHTTPClientTransport(new URL(server.url), {
      requestInit: token === undefined ? {} : { headers: { Authorization: `Bearer ${token}` } },
    });
    const client = new Client({ name: "http-test-client", version: "0.0.0" });
    await client.connect(transport);
    clients.add(client);
    return client;
  };

  return {
    url: server.url,
    origin: new URL(server.url).origin,
    get db() {
      return db;
    },
    clock,
    get logs() {
      return rawLogs.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    rawLogs,
    connect,
    async call(token, name, args = {}) {
      const client = await connect(token);
      try {
        return await callTool(client, name, args);
      } finally {
        await client.close();
        clients.delete(client);
      }
    },
    async close() {
      for (const client of clients) await client.close();
      await server.close(1000);
      if (!(services instanceof AppError)) await services.repository.close();
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The body parsed as JSON, or undefined. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read fields they assert on
  json: any;
}

export interface RawRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Sends the body in chunks without a Content-Length. */
  chunked?: boolean;
  /** The address the request leaves from: any of 127.0.0.0/8 reaches a server on 127.0.0.1. */
  localAddress?: string;
  /** Sends the headers and half the body, then the rest once this settles: a request in flight. */
  holdUntil?: Promise<unknown>;
}

/** One HTTP request with node:http, to look at statuses and headers exactly. */
export function rawRequest(origin: string, options: RawRequest = {}): Promise<RawResponse> {
  const url = new URL(options.path ?? "/mcp", origin);
  const body = options.body ?? "";
  const headers: Record<string, string> = {
    ...(options.method === undefined || options.method === "POST"
      ? { "Content-Type": "application/json", Accept: "application/json, text/event-stream" }
      : {}),
    ...(options.chunked ? {} : { "Content-Length": String(Buffer.byteLength(body)) }),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? "POST", headers, localAddress: options.localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json });
      });
    });
    // The server may answer (413) and close before the whole body is sent.
    req.on("error", (error: NodeJS.ErrnoException) => (error.code === "EPIPE" || error.code === "ECONNRESET" ? undefined : reject(error)));
    if (options.holdUntil) {
      const buffer = Buffer.from(body);
      req.write(buffer.subarray(0, buffer.length >> 1));
      void options.holdUntil.then(() => req.end(buffer.subarray(buffer.length >> 1)));
    } else if (options.chunked) {
      const buffer = Buffer.from(body);
      for (let offset = 0; offset < buffer.length; offset += 64 * 1024) req.write(buffer.subarray(offset, offset + 64 * 1024));
      req.end();
    } else {
      req.end(body);
    }
  });
}

/** A JSON-RPC request body. */
export function rpc(method: string, params?: Record<string, unknown>, id: number | string = 1): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });
}

/** A `tools/call` body. */
export function toolCall(name: string, args: Record<string, unknown> = {}, id: number | string = 1): string {
  return rpc("tools/call", { name, arguments: args }, id);
}

export function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}
