import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { ElicitRequestSchema, type ClientCapabilities, type ElicitRequest, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import type { JsonSchemaType, JsonSchemaValidator, jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type Database from "better-sqlite3";
import { createTokenResolver, readFileHead } from "../../src/auth/token-source.js";
import { DEFAULT_JWKS_TIMINGS, type JwksTimings } from "../../src/auth/verifier.js";
import { loadConfig } from "../../src/config.js";
import { AppError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { createServer } from "../../src/server.js";
import { createServices } from "../../src/services.js";
import { openDatabase } from "../../src/store/sqlite/database.js";
import { TEST_SECRET } from "./tokens.js";

const ajv = new AjvJsonSchemaValidator();
const compiled = new Map<string, JsonSchemaValidator<unknown>>();

/**
 * The SDK's own output-schema validator (what a Client uses by default), compiled once per
 * distinct schema for every test client of a worker. A client compiles all eight output
 * schemas on each tools/list and builds its own Ajv: about 0.2 s of CPU each time, and the
 * suite lists tools hundreds of times. Every structuredContent is still validated.
 */
export const sharedOutputValidator: jsonSchemaValidator = {
  getValidator<T>(schema: JsonSchemaType): JsonSchemaValidator<T> {
    const key = JSON.stringify(schema);
    let validator = compiled.get(key);
    if (validator === undefined) compiled.set(key, (validator = ajv.getValidator(schema)));
    return validator as JsonSchemaValidator<T>;
  },
};

/** A clock tests move by hand. Starts at the real time, so tokens minted now are valid. */
export interface TestClock {
  (): number;
  advance(ms: number): void;
  set(ms: number): void;
}

export function testClock(start = Date.now()): TestClock {
  let now = start;
  const clock = (() => now) as TestClock;
  clock.advance = (ms) => {
    now += ms;
  };
  clock.set = (ms) => {
    now = ms;
  };
  return clock;
}

export type CallOutcome =
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read fields they assert on
  | { ok: true; data: any; texts: string[] }
  | { ok: false; code: string; text: string };

export interface TestServer {
  client: Client;
  /** The server's database handle, for looking behind the tools. Null if it never opened. */
  db: Database.Database | null;
  clock: TestClock;
  /** Every stderr log line, parsed. */
  logs: Record<string, unknown>[];
  /** Every stderr log line, as written. */
  rawLogs: string[];
  call(name: string, args?: Record<string, unknown>): Promise<CallOutcome>;
  /** Writes the key uses the server has counted but not yet written. */
  flushUsage(): Promise<void>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** Environment for loadConfig; by default the HMAC test secret and an in-memory database. */
  env?: Record<string, string | undefined>;
  clock?: TestClock;
  /** JWKS fetch timings, in real milliseconds: short ones make JWKS tests fast and sleep-free. */
  jwks?: Partial<JwksTimings>;
  /** Passed to createServices: how often counted key uses are written. */
  usageFlushMs?: number;
  /** Opens the database (default openDatabase), e.g. with a broken native binding. */
  openDb?: (path: string) => Database.Database;
  /** How the client names itself in `initialize` (default test-client 0.0.0). */
  clientInfo?: { name: string; version: string };
  /** The client's capabilities; `onElicit` adds form elicitation. */
  capabilities?: ClientCapabilities;
  /** Answers the server's elicitation requests: the client then declares form elicitation. */
  onElicit?: (params: ElicitRequest["params"]) => ElicitResult | Promise<ElicitResult>;
}

/**
 * The real server (config, services, SQLite with its migrations, jose) connected to a real MCP
 * client through an in-memory transport pair.
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const clock = options.clock ?? testClock();
  // An in-memory SQLite database, unless the test names a store of its own (a PostgreSQL URL).
  const store = options.env?.API_KEYS_MCP_DATABASE_URL === undefined ? { API_KEYS_MCP_DB: ":memory:" } : {};
  const env = { API_KEYS_MCP_JWT_SECRET: TEST_SECRET, ...store, ...options.env };
  const { config, problems } = loadConfig({ env, platform: "linux", homedir: "/nonexistent-home", readFile: (p) => readFileSync(p, "utf8") });
  const rawLogs: string[] = [];
  const logger = createLogger({ level: "debug", write: (line) => rawLogs.push(line), clock });
  let db: Database.Database | null = null;
  const services = createServices({
    config,
    problems,
    logger,
    clock,
    openDb: (path) => (db = (options.openDb ?? openDatabase)(path)),
    jwks: { ...DEFAULT_JWKS_TIMINGS, ...options.jwks },
    usageFlushMs: options.usageFlushMs,
  });
  const resolveToken = createTokenResolver({ value: config.token.value, file: config.token.file, readFile: readFileHead });
  const { server, close } = createServer({ services, logger, clock, version: "0.0.0-test", credentials: { from: "argument", resolveToken } });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  const capabilities: ClientCapabilities = { ...options.capabilities, ...(options.onElicit && { elicitation: { form: {} } }) };
  const client = new Client(options.clientInfo ?? { name: "test-client", version: "0.0.0" }, { capabilities, jsonSchemaValidator: sharedOutputValidator });
  const onElicit = options.onElicit;
  if (onElicit) client.setRequestHandler(ElicitRequestSchema, (request) => onElicit(request.params));
  await server.connect(serverTransport);
  await client.connect(clientTransport);

  return {
    client,
    get db() {
      return db;
    },
    clock,
    get logs() {
      return rawLogs.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    rawLogs,
    call: (name, args = {}) => callTool(client, name, args),
    flushUsage: async () => {
      if (!(services instanceof AppError)) await services.repository.flushUsage();
    },
    async close() {
      await client.close();
      await close();
      if (!(services instanceof AppError)) await services.repository.close();
    },
  };
}

/** Calls a tool and splits the result into data or a coded error. */
export async function callTool(client: Client, name: string, args: Record<string, unknown> = {}): Promise<CallOutcome> {
  const result = await client.callTool({ name, arguments: args });
  const texts = (result.content as { type: string; text: string }[]).map((part) => part.text);
  if (result.isError) {
    const text = texts.join("\n");
    const code = /^(ERR_[A-Z_]+|MCP error -?\d+)/.exec(text)?.[1] ?? "UNCODED";
    return { ok: false, code, text };
  }
  return { ok: true, data: result.structuredContent, texts };
}
