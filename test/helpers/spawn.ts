import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { callTool, sharedOutputValidator, type CallOutcome } from "./server.js";

/** The built entry point, as `npx api-keys-mcp` or a host's `node …/dist/src/index.js` runs it. */
export const SERVER_ENTRY = fileURLToPath(new URL("../../dist/src/index.js", import.meta.url));

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = "api-keys-mcp-test-"): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Rejects if `promise` does not settle within `ms`: a bound on waiting, not a timing assert. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface SpawnedClient {
  client: Client;
  /** The server's process id. */
  pid: number;
  /** stderr lines so far. */
  stderr: string[];
  call(name: string, args?: Record<string, unknown>): Promise<CallOutcome>;
  close(): Promise<void>;
}

/** Spawns the built server the way an MCP host does and connects a real client over stdio. */
export async function spawnClient(env: Record<string, string>, cwd?: string): Promise<SpawnedClient> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [SERVER_ENTRY], env, cwd, stderr: "pipe" });
  const stderr: string[] = [];
  let partial = "";
  transport.stderr?.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString("utf8")).split("\n");
    partial = lines.pop() ?? "";
    stderr.push(...lines);
  });
  const client = new Client({ name: "spawn-test", version: "0.0.0" }, { jsonSchemaValidator: sharedOutputValidator });
  await client.connect(transport);
  return { client, pid: transport.pid!, stderr, call: (name, args = {}) => callTool(client, name, args), close: () => client.close() };
}

export interface RawServer {
  child: ChildProcessWithoutNullStreams;
  stdoutLines: string[];
  stderrLines: string[];
  /** Writes one line (a newline is added) to the server's stdin. */
  send(line: string): void;
  /** Resolves with the JSON-RPC response carrying `id`. */
  response(id: number | string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves once `predicate` holds for the complete stdout lines so far; re-checked as lines arrive. */
  waitForStdout(predicate: (lines: string[]) => boolean, timeoutMs?: number): Promise<void>;
  /** The same for stderr, where log lines arrive up to 50 ms after what they record. */
  waitForStderr(predicate: (lines: string[]) => boolean, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the built server with raw pipes, to look at exactly what it writes where. */
export function spawnRaw(env: Record<string, string>, cwd?: string): RawServer {
  const child = spawn(process.execPath, [SERVER_ENTRY], { env: { PATH: process.env.PATH ?? "", ...env }, cwd });
  const stdoutLines: string[] = [];
  const stderrLines: string[] = [];
  const watchers = { stdout: [] as (() => void)[], stderr: [] as (() => void)[] };
  // Only complete lines count: a line cut short by a crash was never received by a client either.
  const split = (target: string[], stream: keyof typeof watchers) => {
    let partial = "";
    return (chunk: Buffer) => {
      const lines = (partial + chunk.toString("utf8")).split("\n");
      partial = lines.pop() ?? "";
      target.push(...lines);
      if (lines.length > 0) for (const watcher of watchers[stream]) watcher();
    };
  };
  child.stdout.on("data", split(stdoutLines, "stdout"));
  child.stderr.on("data", split(stderrLines, "stderr"));
  const waitFor = (stream: keyof typeof watchers, lines: string[], predicate: (lines: string[]) => boolean, timeoutMs = 10_000) =>
    new Promise<void>((resolve, reject) => {
      const stop = () => {
        clearTimeout(timer);
        watchers[stream] = watchers[stream].filter((watcher) => watcher !== check);
      };
      const check = () => {
        if (!predicate(lines)) return;
        stop();
        resolve();
      };
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`${stream} did not reach the expected state within ${timeoutMs} ms`));
      }, timeoutMs);
      watchers[stream].push(check);
      check();
    });
  const waitForStdout = (predicate: (lines: string[]) => boolean, timeoutMs?: number) => waitFor("stdout", stdoutLines, predicate, timeoutMs);
  const waitForStderr = (predicate: (lines: string[]) => boolean, timeoutMs?: number) => waitFor("stderr", stderrLines, predicate, timeoutMs);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  // Each stdout line is parsed once, for every response() to come: a session of many calls
  // otherwise parses its whole stdout again for each one.
  const responses = new Map<unknown, Record<string, unknown>>();
  let parsed = 0;
  const indexResponses = () => {
    for (; parsed < stdoutLines.length; parsed++) {
      const message = JSON.parse(stdoutLines[parsed]!) as Record<string, unknown>;
      if (!responses.has(message.id)) responses.set(message.id, message);
    }
  };
  return {
    child,
    stdoutLines,
    stderrLines,
    exited,
    send: (line) => child.stdin.write(`${line}\n`),
    waitForStdout,
    waitForStderr,
    async response(id, timeoutMs = 10_000) {
      await waitForStdout(() => {
        indexResponses();
        return responses.has(id);
      }, timeoutMs).catch(() => {
        throw new Error(`no response with id ${id} within ${timeoutMs} ms`);
      });
      return responses.get(id)!;
    },
  };
}

export interface CommandRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/src/index.js …args` to completion (killed after 10 s) with only PATH, HOME and `env`. */
export function runCommand(args: string[], env: Record<string, string>, home: string): Promise<CommandRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER_ENTRY, ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: home, ...env },
      cwd: home,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 10_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
