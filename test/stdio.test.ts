import { existsSync } from "node:fs";
import { join } from "node:path";
import { LATEST_PROTOCOL_VERSION } from "@modelcontextprotocol/sdk/types.js";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { hashApiKey } from "../src/keys/secret.js";
import { ONE_CALL_PER_TOOL, parseLines, requestLine, session, TOOL_NAMES, type Json } from "./helpers/rpc.js";
import { spawnClient, spawnRaw, tempDir, within, type RawServer, type SpawnedClient } from "./helpers/spawn.js";
import { merchantToken, TEST_SECRET } from "./helpers/tokens.js";

const UNKNOWN_KEY_ID = "key_AAAAAAAAAAAAAAAAAAAA";

describe("stdio server, black box (L1, C1, E3)", () => {
  let dir: ReturnType<typeof tempDir>;
  let dbPath: string;
  const children: RawServer[] = [];
  const clients: SpawnedClient[] = [];

  beforeEach(() => {
    dir = tempDir();
    dbPath = join(dir.path, "keys.db");
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) await client.close();
    for (const { child, exited } of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    }
    dir.remove();
  });

  const start = (env: Record<string, string>) => {
    const server = spawnRaw({ API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_DB: dbPath, ...env });
    children.push(server);
    return server;
  };

  it("writes only JSON-RPC 2.0 on stdout, JSON log lines on stderr, one tool_call line per call, and no secrets", async () => {
    const token = await merchantToken("merchant_stdio", "user_stdio");
    const otherToken = await merchantToken("merchant_stdio", "user_other");
    const server = start({ API_KEYS_MCP_TOKEN: token });
    const rpc = session(server);
    await rpc.initialize();

    const created = await rpc.call("create_api_key", { name: "stdio key", description: "made over stdio" });
    expect(created.isError).toBeUndefined();
    const { key, api_key: plaintext } = created.structuredContent as { key: { key_id: string }; api_key: string };
    const keyId = key.key_id;
    expect(plaintext).toMatch(/^sk_test_[0-9A-Za-z]{32}$/);

    // A plaintext goes in as an argument here: it must not come back out in a log line.
    expect((await rpc.call("verify_api_key", { api_key: plaintext })).structuredContent).toMatchObject({
      valid: true,
      code: "VALID",
      key: { key_id: keyId },
    });
    expect((await rpc.call("list_api_keys", {})).structuredContent).toMatchObject({ keys: [{ key_id: keyId }], next_cursor: null });
    expect((await rpc.call("get_api_key", { key_id: keyId })).structuredContent).toMatchObject({ key: { key_id: keyId } });
    expect((await rpc.call("update_api_key", { key_id: keyId, name: "renamed", token: otherToken })).structuredContent).toMatchObject({
      key: { name: "renamed" },
    });
    const rotated = await rpc.call("rotate_api_key", { key_id: keyId, grace_period: "1h" });
    expect(rotated.isError).toBeUndefined();
    const { key: newKey, api_key: rotatedPlaintext } = rotated.structuredContent as { key: { key_id: string }; api_key: string };
    expect(rotatedPlaintext).toMatch(/^sk_test_[0-9A-Za-z]{32}$/);
    expect(rotated.structuredContent).toMatchObject({ key: { rotated_from: keyId }, previous: { key_id: keyId, rotated_to: newKey.key_id } });
    expect((await rpc.call("list_audit_events", { key_id: keyId })).structuredContent).toMatchObject({
      events: [{ action: "api_key.rotated" }, { action: "api_key.updated" }, { action: "api_key.created" }],
      next_cursor: null,
    });
    expect((await rpc.call("delete_api_key", { key_id: keyId })).structuredContent).toMatchObject({ key: { status: "revoked" } });
    const missing = await rpc.call("get_api_key", { key_id: UNKNOWN_KEY_ID });
    expect(missing.isError).toBe(true);
    expect(missing.content[0]!.text).toMatch(/^ERR_NOT_FOUND: /);
    const refused = await rpc.call("list_api_keys", { token: "not.a.jwt" });
    expect(refused.content[0]!.text).toMatch(/^ERR_AUTH_INVALID: /);

    server.child.stdin.end();
    expect(await within(server.exited, 5000, "exit after stdin closed")).toEqual({ code: 0, signal: null });

    // stdout: every line a JSON-RPC 2.0 response to one of our 11 requests, each answered once.
    const stdout = server.stdoutLines.filter((line) => line !== "");
    expect(stdout.length).toBe(11);
    const messages = parseLines(stdout);
    for (const message of messages) {
      expect(message.jsonrpc).toBe("2.0");
      expect("result" in message).toBe(true);
    }
    expect(messages.map((m) => m.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

    // stderr: JSON lines with a level and a message.
    const logs = parseLines(server.stderrLines);
    expect(logs.length).toBe(server.stderrLines.filter((line) => line !== "").length);
    for (const log of logs) {
      expect(["debug", "info", "warn", "error"]).toContain(log.level);
      expect(typeof log.msg).toBe("string");
      expect(new Date(log.time as string).toISOString()).toBe(log.time);
    }

    const toolCalls = logs.filter((log) => log.msg === "tool_call");
    const line = (tool: string, outcome: string, subject: string | undefined, key_id: string | undefined) => ({
      time: expect.any(String),
      level: "info",
      msg: "tool_call",
      tool,
      outcome,
      duration_ms: expect.any(Number),
      tenant: subject === undefined ? undefined : "merchant_stdio",
      subject,
      key_id,
      client: "raw-stdio-test/0.0.0",
    });
    expect(toolCalls).toEqual([
      line("create_api_key", "OK", "user_stdio", keyId),
      line("verify_api_key", "OK", "user_stdio", keyId),
      line("list_api_keys", "OK", "user_stdio", undefined),
      line("get_api_key", "OK", "user_stdio", keyId),
      line("update_api_key", "OK", "user_other", keyId),
      line("rotate_api_key", "OK", "user_stdio", keyId),
      line("list_audit_events", "OK", "user_stdio", keyId),
      line("delete_api_key", "OK", "user_stdio", keyId),
      line("get_api_key", "ERR_NOT_FOUND", "user_stdio", UNKNOWN_KEY_ID),
      line("list_api_keys", "ERR_AUTH_INVALID", undefined, undefined),
    ]);
    for (const call of toolCalls) expect(call.duration_ms as number).toBeGreaterThanOrEqual(0);

    const stderr = server.stderrLines.join("\n");
    const stdoutText = stdout.join("\n");
    for (const secret of [plaintext, rotatedPlaintext]) {
      // In the create or rotate result, where it belongs, and only there: verify does not echo it.
      expect(stdout.filter((line) => line.includes(secret))).toHaveLength(1);
      expect(stderr).not.toContain(secret);
      expect(stderr).not.toContain(secret.slice(8)); // the body alone
      expect(stderr).not.toContain(hashApiKey(secret));
      expect(stdoutText).not.toContain(hashApiKey(secret));
    }
    for (const secret of [token, otherToken, TEST_SECRET]) {
      expect(stderr).not.toContain(secret);
      expect(stdoutText).not.toContain(secret);
    }
    expect(stderr).not.toContain(token.split(".")[2]); // not even the signature
  });

  it("skips lines that are not JSON-RPC and answers the next request", async () => {
    const server = start({ API_KEYS_MCP_TOKEN: await merchantToken("merchant_junk") });
    const rpc = session(server);
    await rpc.initialize();

    server.send("garbage");
    server.send('{"jsonrpc":');
    server.send("x".repeat(100 * 1024));
    server.send('{"jsonrpc":"2.0","method":');
    const list = await rpc.request("tools/list");
    expect((list.result as { tools: { name: string }[] }).tools.map((t) => t.name).sort()).toEqual(TOOL_NAMES);
    const created = await rpc.call("create_api_key", { name: "after junk" });
    expect(created.isError).toBeUndefined();
    expect(server.child.exitCode).toBeNull();

    server.child.stdin.end();
    expect(await within(server.exited, 5000, "exit after stdin closed")).toEqual({ code: 0, signal: null });
    for (const message of parseLines(server.stdoutLines)) expect(message.jsonrpc).toBe("2.0");
    const logs = parseLines(server.stderrLines);
    expect(logs.filter((log) => log.msg === "protocol_error").map((log) => log.level)).toEqual(["warn", "warn", "warn", "warn"]);
    // The junk is reported, not copied into the log.
    expect(server.stderrLines.every((line) => line.length < 8192)).toBe(true);
  });

  // The SDK's stdio transport buffers an unterminated line up to 10 MB and then closes itself:
  // the server stopped reading and the process exited, ending the host's session. A line over
  // 1 MiB is now dropped unread, the client is told, and the next line is read as usual.
  it("discards a 12 MB line with a JSON-RPC error, and answers the next request", async () => {
    const server = start({ API_KEYS_MCP_TOKEN: await merchantToken("merchant_huge") });
    const rpc = session(server);
    await rpc.initialize();

    server.send(requestLine(99, "tools/call", { name: "create_api_key", arguments: { name: "z".repeat(12 * 1024 * 1024) } }));
    const created = await rpc.call("create_api_key", { name: "after the huge line" });
    expect(created.isError).toBeUndefined();
    expect(server.child.exitCode).toBeNull();
    expect(parseLines(server.stdoutLines)).toContainEqual({
      jsonrpc: "2.0",
      error: { code: -32600, message: "Message discarded: larger than 1048576 bytes." },
    });
    await server.waitForStderr((lines) => lines.some((line) => line.includes('"msg":"message_too_large"')));
    expect(parseLines(server.stderrLines)).toContainEqual(expect.objectContaining({ level: "warn", msg: "message_too_large", bytes: 12 * 1024 * 1024 + 107 }));

    server.child.stdin.end();
    expect(await within(server.exited, 5000, "exit after stdin closed")).toEqual({ code: 0, signal: null });
    const db = new Database(dbPath, { readonly: true });
    try {
      expect(db.prepare("SELECT name FROM api_keys").pluck().all()).toEqual(["after the huge line"]);
    } finally {
      db.close();
    }
  });

  it("exits with code 0 when stdin closes, closing the database after writing counted uses (V1)", async () => {
    const server = start({ API_KEYS_MCP_TOKEN: await merchantToken("merchant_close") });
    const rpc = session(server);
    await rpc.initialize();
    const created = await rpc.call("create_api_key", { name: "k" });
    expect(created.isError).toBeUndefined();
    const { api_key: plaintext } = created.structuredContent as { api_key: string };
    // Uses are batched; the one counted here is still pending when stdin closes.
    expect((await rpc.call("verify_api_key", { api_key: plaintext })).structuredContent).toMatchObject({ valid: true, code: "VALID" });
    expect(existsSync(`${dbPath}-wal`)).toBe(true);

    server.child.stdin.end();
    expect(await within(server.exited, 5000, "exit after stdin closed")).toEqual({ code: 0, signal: null });
    // The last connection to close checkpoints and removes the WAL file.
    expect(existsSync(`${dbPath}-wal`)).toBe(false);
    expect(parseLines(server.stderrLines).at(-1)).toMatchObject({ level: "info", msg: "server_stopping", reason: "stdin closed" });
    const db = new Database(dbPath, { readonly: true });
    try {
      expect(db.prepare("SELECT COUNT(*) FROM api_keys").pluck().get()).toBe(1);
      expect(db.prepare("SELECT usage_count, last_used_at IS NOT NULL AS used FROM key_usage").get()).toEqual({ usage_count: 1, used: 1 });
    } finally {
      db.close();
    }
  });

  it.each(["SIGTERM", "SIGINT"] as const)("exits with code 0 on %s", async (signal) => {
    const server = start({ API_KEYS_MCP_TOKEN: await merchantToken("merchant_signal") });
    await session(server).initialize();
    server.child.kill(signal);
    expect(await within(server.exited, 5000, `exit on ${signal}`)).toEqual({ code: 0, signal: null });
    expect(existsSync(`${dbPath}-wal`)).toBe(false);
    expect(parseLines(server.stderrLines).at(-1)).toMatchObject({ msg: "server_stopping", reason: signal });
  });

  // A host or a script that writes its requests and then closes stdin (`… | api-keys-mcp`) still
  // gets its answers: shutdown waits for calls in flight. Otherwise the create below would commit
  // a key whose only copy of the secret, the response, is never sent.
  it("answers a call that is still in flight when stdin closes", async () => {
    const server = start({ API_KEYS_MCP_TOKEN: await merchantToken("merchant_inflight") });
    server.send(requestLine(1, "initialize", { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "pipe", version: "0" } }));
    server.send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
    server.send(requestLine(2, "tools/call", { name: "create_api_key", arguments: { name: "piped" } }));
    server.child.stdin.end();
    expect(await within(server.exited, 5000, "exit after stdin closed")).toEqual({ code: 0, signal: null });
    const reply = parseLines(server.stdoutLines).find((message) => message.id === 2);
    expect(reply).toMatchObject({ jsonrpc: "2.0", id: 2, result: { structuredContent: { key: { name: "piped" } } } });
  });

  it("lists its tools with no verification key configured, and answers every call with ERR_CONFIG", async () => {
    const client = await spawnClient({ API_KEYS_MCP_DB: dbPath, API_KEYS_MCP_TOKEN: await merchantToken("merchant_noconfig") });
    clients.push(client);
    const { tools } = await client.client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(TOOL_NAMES);

    expect(ONE_CALL_PER_TOOL.map(([tool]) => tool).sort()).toEqual(TOOL_NAMES);
    for (const [tool, args] of ONE_CALL_PER_TOOL) {
      const outcome = await client.call(tool, args);
      expect(outcome.ok, tool).toBe(false);
      if (outcome.ok) continue;
      expect(outcome.code, tool).toBe("ERR_CONFIG");
      expect(outcome.text, tool).toContain("set API_KEYS_MCP_JWT_SECRET");
    }
    // Log lines are written in batches, up to 50 ms late: wait for the line, within a bound.
    await vi.waitFor(
      () => {
        const problem = client.stderr.map((line) => JSON.parse(line) as Json).find((log) => log.msg === "config_problem");
        expect(problem).toMatchObject({ level: "error", variable: "API_KEYS_MCP_JWT_SECRET" });
      },
      { timeout: 5000 },
    );
    // Nothing was written: with no way to authorise, the database is not even opened.
    expect(existsSync(dbPath)).toBe(false);
  });
});
