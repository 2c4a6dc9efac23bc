import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compactDecrypt, exportJWK, generateKeyPair } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../../src/keys/secret.js";
import { recordFigures } from "../helpers/figures.js";
import { session, type RawToolResult } from "../helpers/rpc.js";
import { spawnRaw, tempDir, within, type RawServer } from "../helpers/spawn.js";
import { merchantToken, TEST_SECRET } from "../helpers/tokens.js";

/**
 * The parts of a secret that would give it away: the whole, and every 8-character run of what
 * is not public. A run that straddles the public prefix would hold a single secret character
 * and match by chance (the stored prefix followed by a hash digit), so runs start after it.
 */
function distinctiveParts(secret: string, publicPrefix = 0): string[] {
  const parts = [secret];
  for (let i = publicPrefix; i + 8 <= secret.length; i++) parts.push(secret.slice(i, i + 8));
  return parts;
}

/** A token's payload and signature (its header is the same for every token), whole and in 16-character runs. */
function tokenParts(token: string): string[] {
  const [, payload, signature] = token.split(".") as [string, string, string];
  const parts = [token, payload, signature];
  for (const segment of [payload, signature]) for (let i = 0; i + 16 <= segment.length; i += 8) parts.push(segment.slice(i, i + 16));
  return parts;
}

describe("secrets at rest and in logs", () => {
  let dir: ReturnType<typeof tempDir>;
  let server: RawServer | undefined;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGKILL");
      await server.exited;
    }
    dir.remove();
  });

  it("keeps plaintext keys and tokens out of the database, its WAL and SHM, stderr and stdout, and the file owner-only", async () => {
    // The default location under a data directory that does not exist yet: the server creates
    // it, and the file, owner-only.
    const dataHome = join(dir.path, "data");
    const dbPath = join(dataHome, "api-keys-mcp", "keys.db");
    const envToken = await merchantToken("merchant_secret", "user_env");
    const argToken = await merchantToken("merchant_secret", "user_arg");
    const fileToken = await merchantToken("merchant_secret", "user_file");
    const tokenFile = join(dir.path, "token");
    writeFileSync(tokenFile, fileToken, { mode: 0o600 });
    const plaintexts: string[] = [];
    const stdout: string[] = [];
    const stderr: string[] = [];

    /** A full lifecycle through one server process; `end` is how the process stops. */
    const lifecycle = async (env: Record<string, string>, end: "SIGKILL" | "stdin") => {
      server = spawnRaw({ API_KEYS_MCP_JWT_SECRET: TEST_SECRET, XDG_DATA_HOME: dataHome, API_KEYS_MCP_LOG_LEVEL: "debug", ...env });
      const rpc = session(server);
      await rpc.initialize();
      const made: string[] = [];
      const mine: string[] = [];
      for (const [type, environment] of [["secret", "test"], ["secret", "live"], ["publishable", "test"], ["publishable", "live"]]) {
        const created = await rpc.call("create_api_key", { name: `${type} ${environment}`, type, environment, expiration: "90d" });
        const output = created.structuredContent as { key: { key_id: string }; api_key: string };
        plaintexts.push(output.api_key);
        mine.push(output.api_key);
        made.push(output.key.key_id);
      }
      const byArgument = await rpc.call("create_api_key", { name: "by argument", token: argToken });
      plaintexts.push((byArgument.structuredContent as { api_key: string }).api_key);
      for (const [tool, args] of [
        ["list_api_keys", { status: "all" }],
        ["get_api_key", { key_id: made[0] }],
        ["update_api_key", { key_id: made[0], name: "renamed", description: "now described", expiration: "1y" }],
        ["delete_api_key", { key_id: made[1] }],
        ["get_api_key", { key_id: made[1], token: argToken }],
        // Mistakes a model makes with secrets in hand: a key where a token goes, a key as a key id,
        // a token as a key id, a tampered token. All refused; none may be echoed or stored.
        ["list_api_keys", { token: plaintexts[0] }],
        ["get_api_key", { key_id: plaintexts[0] }],
        ["get_api_key", { key_id: argToken }],
        ["list_api_keys", { token: `${argToken.slice(0, -4)}AAAA` }],
      ] as const) {
        const result: RawToolResult = await rpc.call(tool, args as Record<string, unknown>);
        expect(result.content[0]!.text).not.toMatch(/^ERR_INTERNAL/);
      }
      // Phase 2: a rotation hands over a second secret, which must appear only in its own result;
      // verifications carry a secret in (the right one, a replaced one, a revoked one, a mistyped
      // one, a token) and must never give it back or log it; the audit trail holds neither.
      const rotated = await rpc.call("rotate_api_key", { key_id: made[0], grace_period: "1h", scopes: ["payments:read"] });
      const replacement = (rotated.structuredContent as { api_key: string }).api_key;
      plaintexts.push(replacement);
      const mistyped = `${mine[2]!.slice(0, -1)}${mine[2]!.endsWith("0") ? "1" : "0"}`;
      for (const [apiKey, code] of [
        [mine[0]!, "VALID"],
        [replacement, "VALID"],
        [mine[1]!, "REVOKED"],
        [mistyped, "MALFORMED"],
        [argToken, "MALFORMED"],
      ] as const) {
        const result = await rpc.call("verify_api_key", { api_key: apiKey });
        expect((result.structuredContent as { code: string }).code).toBe(code);
      }
      for (const args of [{}, { key_id: made[0], action: "api_key.rotated" }]) {
        const result = await rpc.call("list_audit_events", args);
        expect(result.isError).toBeUndefined();
        expect((result.structuredContent as { events: unknown[] }).events.length).toBeGreaterThan(0);
      }
      // ...and a secret pasted into free text, which would be stored and listed: refused.
      for (const [tool, args] of [
        ["create_api_key", { name: "replacement", description: `replaces ${plaintexts[0]}` }],
        ["create_api_key", { name: plaintexts[1] }],
        ["update_api_key", { key_id: made[0], description: `token was ${argToken}` }],
        ["update_api_key", { key_id: made[2], name: `key ${plaintexts[2]}` }],
      ] as const) {
        const result: RawToolResult = await rpc.call(tool, args as Record<string, unknown>);
        expect(result.content[0]!.text).toMatch(/^ERR_VALIDATION: (name|description) contains what looks like an API key or a token/);
      }
      if (end === "SIGKILL") {
        // Log lines are written up to 50 ms after the call; wait (bounded) for this session's 24
        // to arrive, so the scan below covers them.
        await server.waitForStderr((lines) => lines.filter((line) => line.includes('"msg":"tool_call"')).length >= 24, 5000);
        // Killed with the WAL and SHM still on disk, as after a crash.
        server.child.kill("SIGKILL");
        await within(server.exited, 10_000, "death by SIGKILL");
      } else {
        server.child.stdin.end();
        expect(await within(server.exited, 10_000, "exit after stdin closed")).toEqual({ code: 0, signal: null });
      }
      stdout.push(...server.stdoutLines);
      stderr.push(...server.stderrLines);
    };

    const checkFiles = () => {
      const files = [dbPath, `${dbPath}-wal`, `${dbPath}-shm`].filter((file) => existsSync(file));
      for (const file of files) {
        expect((statSync(file).mode & 0o777).toString(8), `${file} is owner-only`).toBe("600");
        const bytes = readFileSync(file);
        for (const plaintext of plaintexts) {
          for (const part of distinctiveParts(plaintext, plaintext.indexOf("_", 3) + 5)) expect(bytes.includes(part), `${file} holds part of a key`).toBe(false);
        }
        for (const token of [envToken, argToken, fileToken]) for (const part of tokenParts(token)) expect(bytes.includes(part), `${file} holds part of a token`).toBe(false);
        expect(bytes.includes(TEST_SECRET)).toBe(false);
      }
      return files.length;
    };

    await lifecycle({ API_KEYS_MCP_TOKEN: envToken }, "SIGKILL");
    expect(checkFiles()).toBe(3);
    await lifecycle({ API_KEYS_MCP_TOKEN_FILE: tokenFile }, "stdin");
    expect(checkFiles()).toBe(1);
    expect((statSync(dataHome).mode & 0o777).toString(8)).toBe("700");
    expect((statSync(join(dataHome, "api-keys-mcp")).mode & 0o777).toString(8)).toBe("700");

    // stdout: each plaintext in exactly one line, the create or rotate result that hands it over.
    for (const plaintext of plaintexts) {
      const lines = stdout.filter((line) => line.includes(plaintext.slice(8)));
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!).result.structuredContent.api_key).toBe(plaintext);
    }
    // stderr: none of it, nor the hashes; stdout: no token, no hash, no key body outside its create result.
    const logs = stderr.join("\n");
    const answers = stdout.join("\n");
    for (const plaintext of plaintexts) {
      for (const part of distinctiveParts(plaintext, plaintext.indexOf("_", 3) + 5)) expect(logs.includes(part), "stderr holds part of a key").toBe(false);
      expect(logs.includes(hashApiKey(plaintext))).toBe(false);
      expect(answers.includes(hashApiKey(plaintext))).toBe(false);
    }
    for (const token of [envToken, argToken, fileToken]) {
      for (const part of tokenParts(token)) {
        expect(logs.includes(part), "stderr holds part of a token").toBe(false);
        expect(answers.includes(part), "stdout holds part of a token").toBe(false);
      }
    }
    expect(`${logs}${answers}`.includes(TEST_SECRET)).toBe(false);
    // Every call that reached a tool was logged (the two refused by the schema never do): the scan covered real log lines.
    expect(stderr.filter((line) => line.includes('"msg":"tool_call"')).length).toBe(48);

    recordFigures("secrets-at-rest", { keys: plaintexts.length, tokens: 3, files_scanned: 4, stream_lines_scanned: stdout.length + stderr.length, leaks: 0 });
  }, 60_000);

  it("with API_KEYS_MCP_DELIVERY=file, no key reaches stdout (the model's context), stderr, or the database; each is only in its file or its JWE", async () => {
    const deliveryDir = join(dir.path, "delivered");
    mkdirSync(deliveryDir, { mode: 0o700 });
    const dbPath = join(dir.path, "keys.db");
    server = spawnRaw({
      API_KEYS_MCP_JWT_SECRET: TEST_SECRET,
      API_KEYS_MCP_DB: dbPath,
      API_KEYS_MCP_LOG_LEVEL: "debug",
      API_KEYS_MCP_DELIVERY: "file",
      API_KEYS_MCP_DELIVERY_DIR: deliveryDir,
      API_KEYS_MCP_TOKEN: await merchantToken("merchant_delivery", "user_delivery"),
    });
    const rpc = session(server);
    await rpc.initialize();
    const { publicKey, privateKey } = await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256" });
    const encrypt_to = await exportJWK(publicKey);
    const plaintexts: string[] = [];
    const structured = (result: RawToolResult) => result.structuredContent as { key: { key_id: string }; api_key?: string; delivery: { path?: string; jwe?: string } };
    const take = async (result: RawToolResult) => {
      const output = structured(result);
      expect(output.api_key).toBeUndefined();
      const plaintext = output.delivery.path
        ? readFileSync(output.delivery.path, "utf8").trimEnd()
        : new TextDecoder().decode((await compactDecrypt(output.delivery.jwe!, privateKey)).plaintext);
      expect(plaintext).toMatch(/^(sk|pk)_(test|live)_[0-9A-Za-z]{32}$/);
      plaintexts.push(plaintext);
      return output.key.key_id;
    };
    const inFile = await take(await rpc.call("create_api_key", { name: "default delivery", environment: "live" }));
    const sealed = await take(await rpc.call("create_api_key", { name: "sealed", type: "publishable", delivery: { encrypt_to } }));
    await take(await rpc.call("rotate_api_key", { key_id: inFile, grace_period: "1h", delivery: { encrypt_to } }));
    await take(await rpc.call("rotate_api_key", { key_id: sealed, grace_period: "1h" }));
    const refused = await rpc.call("create_api_key", { name: "inline", delivery: "inline" });
    expect(refused.content[0]!.text).toMatch(/^ERR_VALIDATION: This server does not return keys inline/);
    for (const plaintext of plaintexts) {
      const verified = await rpc.call("verify_api_key", { api_key: plaintext });
      expect((verified.structuredContent as { code: string }).code).toBe("VALID");
    }
    await rpc.call("list_audit_events", { limit: 100 });
    await server.waitForStderr((lines) => lines.filter((line) => line.includes('"msg":"tool_call"')).length >= 10, 5000);
    server.child.stdin.end();
    expect(await within(server.exited, 10_000, "exit after stdin closed")).toEqual({ code: 0, signal: null });

    // stdout is what reaches the model: four handovers, and not a character of any key in them or anywhere else.
    expect(server.stdoutLines.filter((line) => line.includes('"delivery"')).length).toBeGreaterThanOrEqual(4);
    const database = [dbPath, `${dbPath}-wal`].filter((file) => existsSync(file)).map((file) => readFileSync(file));
    for (const plaintext of plaintexts) {
      for (const part of distinctiveParts(plaintext, plaintext.indexOf("_", 3) + 5)) {
        expect(server.stdoutLines.join("\n").includes(part), "stdout holds part of a key").toBe(false);
        expect(server.stderrLines.join("\n").includes(part), "stderr holds part of a key").toBe(false);
        for (const bytes of database) expect(bytes.includes(part), "the database holds part of a key").toBe(false);
      }
    }
    recordFigures("secrets-at-rest-delivery", { keys: plaintexts.length, leaks: 0 });
  }, 60_000);
});
