import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readFileHead } from "../../src/auth/token-source.js";
import type { Io } from "../../src/cli/io.js";
import { serve } from "../../src/cli/serve.js";
import { tempDir, within } from "../helpers/spawn.js";
import { TEST_SECRET } from "../helpers/tokens.js";

/**
 * Runs `serve` in-process through the Io seam until stdin closes, and returns its log lines:
 * everything it logged is written by then, because shutdown flushes stderr before it exits.
 */
async function serveOnce(env: Record<string, string>, homedir: string): Promise<Record<string, unknown>[]> {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr: string[] = [];
  stdout.resume();
  let exited!: (code: number) => void;
  const exit = new Promise<number>((resolve) => (exited = resolve));
  const io: Io = {
    env,
    platform: "linux",
    homedir,
    stdin,
    stdout,
    stderr: new PassThrough().on("data", (chunk: Buffer) => stderr.push(chunk.toString("utf8"))),
    readFileSync: (path) => readFileSync(path, "utf8"),
    readTokenFile: readFileHead,
    onSignal: () => {},
    onExit: () => {},
    exit: (code) => exited(code),
    version: "0.0.0-test",
  };
  await serve(io);
  stdin.end();
  expect(await within(exit, 10_000, "serve exits after stdin closes")).toBe(0);
  return stderr
    .join("")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const startedLine = (logs: Record<string, unknown>[]) => {
  const started = logs.filter((log) => log.msg === "server_started");
  expect(started).toHaveLength(1);
  return started[0]!;
};

describe("the server_started line names the database actually in use", () => {
  let dir: ReturnType<typeof tempDir>;
  let home: string;
  beforeEach(() => {
    dir = tempDir();
    home = join(dir.path, "home");
  });
  afterEach(() => dir.remove());

  it("shows the configured file when it is open", async () => {
    const path = join(dir.path, "keys.db");
    const logs = await serveOnce({ API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_DB: path }, home);
    const started = startedLine(logs);
    expect(started).toMatchObject({ database: path, ready: true, verification: "secret" });
    expect(started).not.toHaveProperty("reason");
    expect(existsSync(path)).toBe(true);
  });

  it("shows the default location when it is open", async () => {
    const logs = await serveOnce({ API_KEYS_MCP_JWT_SECRET: TEST_SECRET }, home);
    const path = join(home, ".local", "share", "api-keys-mcp", "keys.db");
    expect(startedLine(logs)).toMatchObject({ database: path, ready: true });
    expect(existsSync(path)).toBe(true);
  });

  // Before, the line named the default location, which nothing had opened: an operator looking
  // for the keys there would find no file, or another database.
  it.each([
    ["a relative API_KEYS_MCP_DB", { API_KEYS_MCP_DB: "keys.db" }, (): string => home],
    ["an empty home directory", {}, (): string => ""],
  ])("shows null, and why, for %s", async (_label, env: Record<string, string>, homedir) => {
    const logs = await serveOnce({ API_KEYS_MCP_JWT_SECRET: TEST_SECRET, ...env }, homedir());
    expect(logs.find((log) => log.msg === "config_problem")).toMatchObject({ variable: "API_KEYS_MCP_DB" });
    expect(startedLine(logs)).toMatchObject({ database: null, ready: false, reason: "invalid configuration (see config_problem)" });
    expect(existsSync(home)).toBe(false);
  });

  it("shows null when another setting keeps the database closed", async () => {
    const path = join(dir.path, "keys.db");
    const logs = await serveOnce({ API_KEYS_MCP_DB: path }, home);
    expect(startedLine(logs)).toMatchObject({ database: null, ready: false, verification: null, reason: "invalid configuration (see config_problem)" });
    expect(existsSync(path)).toBe(false);
  });

  it("shows null when the database cannot be opened", async () => {
    const path = join(dir.path, "no-such-directory", "keys.db");
    const logs = await serveOnce({ API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_DB: path }, home);
    expect(logs.find((log) => log.msg === "database_open_failed")).toMatchObject({ error: { name: "DatabaseDirectoryMissingError" } });
    expect(startedLine(logs)).toMatchObject({
      database: null,
      ready: false,
      reason: "the database could not be opened (see database_open_failed)",
    });
  });
});
