import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Io } from "../../src/cli/io.js";
import { main } from "../../src/cli/main.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { tempDir } from "../helpers/spawn.js";
import { merchantToken } from "../helpers/tokens.js";

/** Runs `api-keys-mcp decrypt …` in-process, with `stdin` as its standard input. */
async function decrypt(args: string[], stdin = ""): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const io: Io = {
    env: {},
    platform: "linux",
    homedir: "/nonexistent-home",
    stdin: Readable.from(stdin === "" ? [] : [Buffer.from(stdin)]),
    stdout,
    stderr,
    readFileSync: (path) => readFileSync(path, "utf8"),
    readTokenFile: () => Promise.reject(new Error("no token file in this test")),
    onSignal: () => undefined,
    onExit: () => undefined,
    exit: () => undefined,
    version: "0.0.0-test",
  };
  const code = (await main(["decrypt", ...args], io)) as number;
  stdout.end();
  stderr.end();
  return { code, stdout: String(stdout.read() ?? ""), stderr: String(stderr.read() ?? "") };
}

describe("api-keys-mcp decrypt", () => {
  let dir: ReturnType<typeof tempDir>;
  let server: TestServer;
  let keyFile: string;
  let publicJwk: Record<string, unknown>;
  let jwe: string;
  let keyId: string;

  beforeEach(async () => {
    dir = tempDir();
    keyFile = join(dir.path, "recipient.jwk");
    const made = await decrypt(["--new-key", keyFile]);
    expect(made.code).toBe(0);
    publicJwk = JSON.parse(made.stdout) as Record<string, unknown>;
    server = await startTestServer();
    const created = await server.call("create_api_key", { name: "sealed", token: await merchantToken("m", "u"), delivery: { encrypt_to: publicJwk } });
    if (!created.ok) throw new Error(created.text);
    jwe = created.data.delivery.jwe;
    keyId = created.data.key.key_id;
  });
  afterEach(async () => {
    await server.close();
    dir.remove();
  });

  it("--new-key writes a private JWK readable by its owner only, and prints only the public half", () => {
    expect((statSync(keyFile).mode & 0o777).toString(8)).toBe("600");
    const privateJwk = JSON.parse(readFileSync(keyFile, "utf8")) as Record<string, unknown>;
    expect(privateJwk).toMatchObject({ kty: "EC", crv: "P-256", d: expect.any(String), alg: "ECDH-ES+A256KW", use: "enc" });
    expect(publicJwk).not.toHaveProperty("d");
    expect(publicJwk).toMatchObject({ x: privateJwk.x, y: privateJwk.y, kid: privateJwk.kid });
  });

  it("--new-key never overwrites a file", async () => {
    const before = readFileSync(keyFile, "utf8");
    const again = await decrypt(["--new-key", keyFile]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists already; it is never overwritten/);
    expect(again.stdout).toBe("");
    expect(readFileSync(keyFile, "utf8")).toBe(before);
  });

  it("opens the JWE from an argument or from stdin, printing the key the server verifies", async () => {
    const fromArgument = await decrypt(["--key", keyFile, jwe]);
    expect(fromArgument).toMatchObject({ code: 0, stderr: "" });
    const plaintext = fromArgument.stdout.trimEnd();
    expect(plaintext).toMatch(/^sk_test_[0-9A-Za-z]{32}$/);
    expect(await decrypt(["--key", keyFile], `${jwe}\n`)).toEqual(fromArgument);
    const verified = await server.call("verify_api_key", { api_key: plaintext, token: await merchantToken("m", "u") });
    expect(verified.ok && verified.data).toMatchObject({ code: "VALID", key: { key_id: keyId } });
  });

  it("fails with 1 for another key or a damaged JWE, printing nothing on stdout", async () => {
    const otherKey = join(dir.path, "other.jwk");
    await decrypt(["--new-key", otherKey]);
    for (const [key, text] of [
      [otherKey, jwe],
      [keyFile, `${jwe.slice(0, -6)}AAAAAA`],
      [keyFile, jwe.split(".").slice(0, 4).join(".")],
    ] as const) {
      const result = await decrypt(["--key", key, text]);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/does not open with this key/);
    }
  });

  it("fails with 2 for a missing key, a public key as --key, no JWE, or a bad option", async () => {
    const publicFile = join(dir.path, "public.jwk");
    writeFileSync(publicFile, JSON.stringify(publicJwk));
    for (const [args, message] of [
      [[jwe], /--key <private JWK file> is required/],
      [["--key", join(dir.path, "missing.jwk"), jwe], /cannot read the private key/],
      [["--key", publicFile, jwe], /not a private JWK \(it has no "d"\)/],
      [["--key", keyFile], /no JWE/],
      [["--frobnicate"], /Unknown option/],
    ] as const) {
      const result = await decrypt([...args]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });

  it("has --help, and the main help names the command", async () => {
    const help = await decrypt(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: api-keys-mcp decrypt --key <private JWK file> \[<jwe>\]/);
    const stdout = new PassThrough();
    await main(["--help"], { stdout } as unknown as Io);
    stdout.end();
    expect(String(stdout.read())).toContain("api-keys-mcp decrypt --key <f>");
  });
});
