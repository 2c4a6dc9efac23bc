import { readFileSync } from "node:fs";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import type { Io } from "../../src/cli/io.js";
import { main } from "../../src/cli/main.js";

/** Runs a one-shot command in-process; returns its exit code and what it wrote. */
async function run(argv: string[], { env = {}, homedir = "/nonexistent-home" } = {}): Promise<{ code: number | undefined; stdout: string; stderr: string }> {
  const written = { stdout: [] as string[], stderr: [] as string[] };
  const capture = (into: string[]) => new PassThrough().on("data", (chunk: Buffer) => into.push(chunk.toString("utf8")));
  const unused = () => {
    throw new Error("not used by one-shot commands");
  };
  const io: Io = {
    env,
    platform: "linux",
    homedir,
    stdin: new PassThrough(),
    stdout: capture(written.stdout),
    stderr: capture(written.stderr),
    readFileSync: (path) => readFileSync(path, "utf8"),
    readTokenFile: unused,
    onSignal: () => {},
    onExit: () => {},
    exit: unused,
    version: "0.0.0-test",
  };
  const code = await main(argv, io);
  return { code, stdout: written.stdout.join(""), stderr: written.stderr.join("") };
}

describe("help", () => {
  // The configuration refuses two verification settings; help must not invite a second one.
  it("asks for exactly one verification key, as the configuration check does", async () => {
    const { code, stdout } = await run(["--help"]);
    expect(code).toBe(0);
    expect(stdout).toContain("exactly one verification key");
    expect(stdout).not.toContain("at least one");
  });
});

describe("audit verify without --db", () => {
  // It reads the same default location as the server: with no usable home directory there is
  // none, and it must say how to name one rather than look under the working directory.
  it.each(["", "relative-home"])("refuses when the home directory is %j, saying how to fix it", async (homedir) => {
    const { code, stdout, stderr } = await run(["audit", "verify"], { homedir });
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/^api-keys-mcp audit: API_KEYS_MCP_DB is not set and the home directory is empty or not an absolute path/);
    expect(stderr).toContain("; set API_KEYS_MCP_DB to an absolute path");
  });

  it("refuses a relative API_KEYS_MCP_DB, saying how to fix it", async () => {
    const { code, stderr } = await run(["audit", "verify"], { env: { API_KEYS_MCP_DB: "keys.db" } });
    expect(code).toBe(2);
    expect(stderr).toBe(
      "api-keys-mcp audit: API_KEYS_MCP_DB must be an absolute path (MCP hosts start servers in unpredictable working directories); " +
        "set API_KEYS_MCP_DB to an absolute path (or one starting with ~/), or remove it to use the default location\n",
    );
  });
});
