import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { compactDecrypt, exportJWK, generateKeyPair, type CryptoKey, type JWK } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { changeEvents, dumpDatabase, rows } from "../helpers/db.js";
import { startTestServer, type CallOutcome, type TestServer } from "../helpers/server.js";
import { tempDir } from "../helpers/spawn.js";
import { merchantToken } from "../helpers/tokens.js";

/** A recipient key pair made by the test's own jose: the public JWK goes to the server, the private key stays here. */
async function recipient(alg = "ECDH-ES+A256KW", options: { crv?: string; modulusLength?: number } = { crv: "P-256" }): Promise<{ jwk: JWK; privateKey: CryptoKey }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, options);
  return { jwk: await exportJWK(publicKey), privateKey };
}

async function open(jwe: string, privateKey: CryptoKey): Promise<string> {
  return new TextDecoder().decode((await compactDecrypt(jwe, privateKey)).plaintext);
}

function data(result: CallOutcome) {
  if (!result.ok) throw new Error(result.text);
  return result.data;
}

describe("delivery: keys that never enter the model's context", () => {
  let root: ReturnType<typeof tempDir>;
  let dir: string;
  let server: TestServer;
  let token: string;

  const start = async (env: Record<string, string> = {}) => {
    server = await startTestServer({ env: { API_KEYS_MCP_DB: join(root.path, "keys.db"), API_KEYS_MCP_DELIVERY_DIR: dir, ...env } });
    token = await merchantToken("merchant_d", "dana");
    // Once it has listed the tools, the SDK client checks every result against its output schema.
    await server.client.listTools();
  };
  const call = (tool: string, args: Record<string, unknown>) => server.call(tool, { token, ...args });

  /** The plaintext is nowhere a model, an operator reading logs, or a thief of the database could see it. */
  const expectNowhere = (plaintext: string, ...results: CallOutcome[]) => {
    const body = plaintext.slice(8);
    for (const result of results) expect(JSON.stringify(result)).not.toContain(body);
    expect(server.rawLogs.join("\n")).not.toContain(body);
    expect(dumpDatabase(server.db!)).not.toContain(body);
  };

  beforeEach(() => {
    root = tempDir();
    dir = join(root.path, "delivered");
    mkdirSync(dir, { mode: 0o700 });
  });
  afterEach(async () => {
    await server?.close();
    root.remove();
  });

  describe("encrypt_to", () => {
    it.each([
      ["EC P-256", "ECDH-ES+A256KW", { crv: "P-256" }],
      ["RSA 2048", "RSA-OAEP-256", { modulusLength: 2048 }],
    ] as const)("create: only a JWE comes back (%s); the test's jose opens it to a key verify_api_key accepts", async (_label, alg, options) => {
      await start();
      const { jwk, privateKey } = await recipient(alg, options);
      const created = await call("create_api_key", { name: "sealed", environment: "live", delivery: { encrypt_to: jwk } });
      const output = data(created);
      expect(output.api_key).toBeUndefined();
      expect(output.delivery).toEqual({ method: "encrypt_to", jwe: expect.stringMatching(/^[\w-]+\.[\w-]*\.[\w-]+\.[\w-]+\.[\w-]+$/) });
      expect(created.ok && created.texts[0]).toMatch(/not in this result: delivery\.jwe holds it encrypted/);
      const plaintext = await open(output.delivery.jwe, privateKey);
      expect(plaintext).toMatch(/^sk_live_[0-9A-Za-z]{32}$/);
      const verified = data(await call("verify_api_key", { api_key: plaintext }));
      expect(verified).toMatchObject({ valid: true, code: "VALID", key: { key_id: output.key.key_id } });
      expectNowhere(plaintext, created);
      expect(JSON.parse(changeEvents(server.db!)[0]!.changes as string).delivery).toEqual({ from: null, to: "encrypt_to" });
    });

    it("rotate: the new secret comes back sealed too", async () => {
      await start();
      const { jwk, privateKey } = await recipient();
      const old = data(await call("create_api_key", { name: "to rotate", delivery: { encrypt_to: jwk } }));
      const rotated = await call("rotate_api_key", { key_id: old.key.key_id, grace_period: "0", delivery: { encrypt_to: jwk } });
      const output = data(rotated);
      expect(output.api_key).toBeUndefined();
      const plaintext = await open(output.delivery.jwe, privateKey);
      expect(data(await call("verify_api_key", { api_key: plaintext }))).toMatchObject({ code: "VALID", key: { key_id: output.key.key_id } });
      expectNowhere(plaintext, rotated);
      expect(JSON.parse(changeEvents(server.db!)[1]!.changes as string).replacement.to.delivery).toBe("encrypt_to");
    });

    it("refuses a private key with ERR_VALIDATION, creates nothing, and echoes nothing of it", async () => {
      await start();
      const { privateKey } = await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256", extractable: true });
      const privateJwk = await exportJWK(privateKey);
      const refused = await call("create_api_key", { name: "leaky", delivery: { encrypt_to: privateJwk } });
      expect(refused.ok ? "ok" : refused.text).toMatch(/^ERR_VALIDATION: delivery\.encrypt_to is a private key \(it has "d"\)/);
      expect(JSON.stringify(refused)).not.toContain(privateJwk.d!);
      expect(server.rawLogs.join("\n")).not.toContain(privateJwk.d!);
      expect(rows(server.db!, "api_keys")).toEqual([]);
      expect(changeEvents(server.db!)).toEqual([]);
    });
  });

  describe("file", () => {
    it("create: the key goes to <key_id>.key, 0600, and the result names the path only", async () => {
      await start();
      const created = await call("create_api_key", { name: "on disk", delivery: "file" });
      const output = data(created);
      expect(output.api_key).toBeUndefined();
      const path = join(dir, `${output.key.key_id}.key`);
      expect(output.delivery).toEqual({ method: "file", path });
      expect(readdirSync(dir)).toEqual([`${output.key.key_id}.key`]);
      expect((statSync(path).mode & 0o777).toString(8)).toBe("600");
      const plaintext = readFileSync(path, "utf8").trimEnd();
      expect(data(await call("verify_api_key", { api_key: plaintext }))).toMatchObject({ code: "VALID", key: { key_id: output.key.key_id } });
      expect(created.ok && created.texts[0]).toContain(`written to ${path}`);
      expectNowhere(plaintext, created);
      expect(JSON.parse(changeEvents(server.db!)[0]!.changes as string).delivery).toEqual({ from: null, to: "file" });
    });

    it("rotate: the new key goes to its own file; the old one's file is left alone", async () => {
      await start();
      const old = data(await call("create_api_key", { name: "rotating", delivery: "file" }));
      const oldText = readFileSync(old.delivery.path, "utf8");
      const rotated = await call("rotate_api_key", { key_id: old.key.key_id, grace_period: "1h", delivery: "file" });
      const output = data(rotated);
      expect(output.delivery.path).toBe(join(dir, `${output.key.key_id}.key`));
      expect(readFileSync(old.delivery.path, "utf8")).toBe(oldText);
      const plaintext = readFileSync(output.delivery.path, "utf8").trimEnd();
      expect(data(await call("verify_api_key", { api_key: plaintext }))).toMatchObject({ code: "VALID", key: { key_id: output.key.key_id } });
      expectNowhere(plaintext, rotated);
    });

    it("takes the file back when the key cannot be committed: no key without its file, no file without its key", async () => {
      await start();
      server.db!.exec("CREATE TEMP TRIGGER refuse_keys BEFORE INSERT ON api_keys BEGIN SELECT RAISE(ABORT, 'forced failure'); END");
      const failed = await call("create_api_key", { name: "doomed", delivery: "file" });
      expect(failed.ok ? "ok" : failed.code).toBe("ERR_INTERNAL");
      expect(readdirSync(dir)).toEqual([]);
      expect(rows(server.db!, "api_keys")).toEqual([]);
      server.db!.exec("DROP TRIGGER temp.refuse_keys");
      const kept = data(await call("create_api_key", { name: "kept", delivery: "file" }));
      expect(readdirSync(dir)).toEqual([`${kept.key.key_id}.key`]);
    });

    it("answers ERR_VALIDATION for file delivery on a server without a delivery directory", async () => {
      server = await startTestServer();
      token = await merchantToken("merchant_d", "dana");
      const refused = await call("create_api_key", { name: "nowhere", delivery: "file" });
      expect(refused.ok ? "ok" : refused.text).toMatch(/^ERR_VALIDATION: File delivery is not set up on this server \(API_KEYS_MCP_DELIVERY_DIR is not set\)/);
      expect(rows(server.db!, "api_keys")).toEqual([]);
    });
  });

  describe("API_KEYS_MCP_DELIVERY=file: no key reaches a model", () => {
    it("refuses inline with a clear ERR_VALIDATION and changes nothing; file is the default; encrypt_to stays allowed", async () => {
      await start({ API_KEYS_MCP_DELIVERY: "file" });
      const refused = await call("create_api_key", { name: "inline please", delivery: "inline" });
      expect(refused.ok ? "ok" : refused.text).toMatch(
        /^ERR_VALIDATION: This server does not return keys inline \(the operator set API_KEYS_MCP_DELIVERY=file\).*Use delivery "file".*encrypt_to/,
      );
      expect(rows(server.db!, "api_keys")).toEqual([]);
      expect(changeEvents(server.db!)).toEqual([]);

      const byDefault = data(await call("create_api_key", { name: "default" }));
      expect(byDefault.delivery.method).toBe("file");
      expect(byDefault.api_key).toBeUndefined();
      const rotatedInline = await call("rotate_api_key", { key_id: byDefault.key.key_id, grace_period: "0", delivery: "inline" });
      expect(rotatedInline.ok ? "ok" : rotatedInline.code).toBe("ERR_VALIDATION");
      const sealed = data(await call("create_api_key", { name: "sealed", delivery: { encrypt_to: (await recipient()).jwk } }));
      expect(sealed.delivery.method).toBe("encrypt_to");
    });
  });
});
