import { spawn } from "node:child_process";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { bearer, rawRequest, toolCall } from "../helpers/http.js";
import { SERVER_ENTRY, tempDir, within } from "../helpers/spawn.js";
import { merchantToken, TEST_SECRET } from "../helpers/tokens.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** The built server, spawned with `serve --http --port 0`; resolves once it names the URL it bound. */
async function spawnHttpServer(env: Record<string, string>) {
  const child = spawn(process.execPath, [SERVER_ENTRY, "serve", "--http", "--port", "0"], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  cleanups.push(() => child.kill("SIGKILL"));
  const lines: string[] = [];
  let partial = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const url = await within(
    new Promise<string>((resolve) => {
      child.stderr.on("data", (chunk: Buffer) => {
        const parts = (partial + chunk.toString("utf8")).split("\n");
        partial = parts.pop() ?? "";
        lines.push(...parts);
        const started = lines.map((line) => JSON.parse(line) as { msg: string; url?: string }).find((line) => line.msg === "server_started");
        if (started?.url) resolve(started.url);
      });
    }),
    10_000,
    "server_started",
  );
  return { child, url, lines, exited, logs: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe("serve --http, spawned", () => {
  it("on SIGTERM finishes the requests in flight, writes their key uses, and exits 0", async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const dbPath = join(dir.path, "keys.db");
    const server = await spawnHttpServer({ API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_DB: dbPath, API_KEYS_MCP_RATE_LIMIT_READ: "100000" });
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const origin = new URL(server.url).origin;
    const token = await merchantToken("merchant_a", "alice");

    const created = await rawRequest(origin, { headers: bearer(token), body: toolCall("create_api_key", { name: "counted" }) });
    const apiKey = JSON.parse(created.json.result.content[1].text).api_key as string;

    // Requests in flight: headers and half a body sent, the rest after SIGTERM.
    const HELD = 20;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const held = Array.from({ length: HELD }, (_, i) =>
      rawRequest(origin, { headers: bearer(token), body: toolCall("verify_api_key", { api_key: apiKey }, i), holdUntil: released }),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    server.child.kill("SIGTERM");
    await within(
      new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if (server.logs().some((line) => line.msg === "server_stopping")) resolve(clearInterval(poll));
        }, 20);
      }),
      5_000,
      "server_stopping",
    );
    // No new connection is accepted any more.
    await expect(rawRequest(origin, { headers: bearer(token), body: toolCall("list_api_keys") })).rejects.toMatchObject({ code: "ECONNREFUSED" });
    release();

    const answered = await Promise.all(held);
    for (const response of answered) {
      expect(response.status).toBe(200);
      expect(response.json.result.structuredContent).toMatchObject({ valid: true, code: "VALID" });
    }
    const { code, signal } = await within(server.exited, 15_000, "exit after SIGTERM");
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(server.logs().find((line) => line.msg === "server_stopping")).toMatchObject({ reason: "SIGTERM", requests_in_flight: HELD });
    expect(server.logs().some((line) => line.msg === "shutdown_abandoned_requests")).toBe(false);

    // Every verification answered was counted, and the count reached the database before exit.
    const db = new Database(dbPath, { readonly: true });
    try {
      expect(db.prepare("SELECT usage_count FROM key_usage").pluck().get()).toBe(HELD);
    } finally {
      db.close();
    }
  });

  it("refuses to start on a non-loopback address without API_KEYS_MCP_ALLOWED_HOSTS", async () => {
    const child = spawn(process.execPath, [SERVER_ENTRY, "serve", "--http", "--host", "0.0.0.0", "--port", "0"], {
      env: { PATH: process.env.PATH ?? "", API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_DB: ":memory:" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    cleanups.push(() => child.kill("SIGKILL"));
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const code = await within(new Promise<number | null>((resolve) => child.on("exit", resolve)), 10_000, "exit");
    expect(code).toBe(2);
    expect(stderr).toMatch(/0\.0\.0\.0, which is not a loopback address, and no host names are allowed.*; set API_KEYS_MCP_ALLOWED_HOSTS/);
  });
});
