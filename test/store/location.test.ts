import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DatabaseDirectoryMissingError, NativeModuleError, openDatabase } from "../../src/store/sqlite/database.js";
import { startTestServer, type CallOutcome } from "../helpers/server.js";
import { spawnClient, tempDir, type SpawnedClient } from "../helpers/spawn.js";
import { merchantToken, TEST_SECRET } from "../helpers/tokens.js";

const mode = (path: string) => statSync(path).mode & 0o777;

describe("database location (S2)", () => {
  let root: ReturnType<typeof tempDir>;
  let home: string;
  let cwd: string;
  let server: SpawnedClient | undefined;

  beforeEach(() => {
    root = tempDir();
    home = join(root.path, "home");
    cwd = join(root.path, "cwd");
    mkdirSync(home);
    mkdirSync(cwd);
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    root.remove();
  });

  /** Starts the built server with only the variables given (no API_KEYS_MCP_DB unless given). */
  async function start(env: Record<string, string>): Promise<SpawnedClient> {
    server = await spawnClient(
      { API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_TOKEN: await merchantToken("merchant_loc"), HOME: home, ...env },
      cwd,
    );
    return server;
  }

  const createOk = async (client: SpawnedClient) => {
    const outcome = await client.call("create_api_key", { name: "located" });
    expect(outcome.ok).toBe(true);
  };

  it("puts the database in $XDG_DATA_HOME/api-keys-mcp/keys.db, owner-only, and nothing in the working directory", async () => {
    const xdg = join(root.path, "xdg-data");
    const client = await start({ XDG_DATA_HOME: xdg });
    await createOk(client);

    const folder = join(xdg, "api-keys-mcp");
    const file = join(folder, "keys.db");
    expect(mode(file)).toBe(0o600);
    expect(mode(folder)).toBe(0o700);
    // SQLite gives the WAL and shared-memory files the main file's permissions.
    expect(readdirSync(folder).sort()).toEqual(["keys.db", "keys.db-shm", "keys.db-wal"]);
    expect(mode(`${file}-wal`)).toBe(0o600);
    expect(mode(`${file}-shm`)).toBe(0o600);
    expect(readdirSync(cwd)).toEqual([]);
    expect(readdirSync(home)).toEqual([]);
  });

  it("falls back to $HOME/.local/share/api-keys-mcp/keys.db without XDG_DATA_HOME", async () => {
    const client = await start({});
    await createOk(client);
    const folder = join(home, ".local", "share", "api-keys-mcp");
    expect(mode(join(folder, "keys.db"))).toBe(0o600);
    expect(mode(folder)).toBe(0o700);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("ignores a relative XDG_DATA_HOME, as the XDG spec requires", async () => {
    const client = await start({ XDG_DATA_HOME: "relative-data" });
    await createOk(client);
    expect(existsSync(join(home, ".local", "share", "api-keys-mcp", "keys.db"))).toBe(true);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("expands a leading ~/ in API_KEYS_MCP_DB to the home directory", async () => {
    mkdirSync(join(home, "custom"));
    const client = await start({ API_KEYS_MCP_DB: "~/custom/keys.db" });
    await createOk(client);
    expect(mode(join(home, "custom", "keys.db"))).toBe(0o600);
    expect(readdirSync(cwd)).toEqual([]);
  });

  const refusal = (outcome: CallOutcome) => {
    expect(outcome.ok).toBe(false);
    expect((outcome as Extract<CallOutcome, { ok: false }>).code).toBe("ERR_CONFIG");
    return (outcome as Extract<CallOutcome, { ok: false }>).text;
  };

  // os.homedir() returns HOME as it is, even empty or relative; joined onto the default location
  // it would put the database under whatever directory the host started the server in.
  it.each(["", "relative-home"])("refuses to guess a location when HOME is %j, and creates nothing anywhere", async (value) => {
    const client = await start({ HOME: value });
    const text = refusal(await client.call("create_api_key", { name: "homeless" }));
    expect(text).toContain("the home directory is empty or not an absolute path");
    expect(text).toContain("Ask the operator to set API_KEYS_MCP_DB to an absolute path");
    expect(readdirSync(cwd)).toEqual([]);
    expect(readdirSync(home)).toEqual([]);
    expect(readdirSync(root.path).sort()).toEqual(["cwd", "home"]);
  });

  it("still finds the database through an absolute XDG_DATA_HOME when HOME is empty", async () => {
    const xdg = join(root.path, "xdg-data");
    const client = await start({ HOME: "", XDG_DATA_HOME: xdg });
    await createOk(client);
    expect(mode(join(xdg, "api-keys-mcp", "keys.db"))).toBe(0o600);
    expect(readdirSync(cwd)).toEqual([]);
  });

  // Only the default location is created: a chosen path with a typo in its directory would
  // otherwise start a new, empty database that knows none of the keys.
  it.each([
    ["an absolute path", () => join(root.path, "dta", "keys.db")],
    ["a path under ~/", () => "~/dta/keys.db"],
  ])("refuses API_KEYS_MCP_DB in a directory that does not exist (%s), and creates none", async (_label, value) => {
    const client = await start({ API_KEYS_MCP_DB: value() });
    const text = refusal(await client.call("create_api_key", { name: "typo" }));
    expect(text).toContain("The directory named in API_KEYS_MCP_DB does not exist");
    expect(text).toContain("Ask the operator to set API_KEYS_MCP_DB to a file in an existing directory");
    expect(text).not.toContain(root.path);
    expect(readdirSync(root.path).sort()).toEqual(["cwd", "home"]);
    expect(readdirSync(home)).toEqual([]);
  });

  it.each(["keys.db", "./data/keys.db", "../keys.db"])("refuses the relative API_KEYS_MCP_DB %s with ERR_CONFIG and creates no file", async (relative) => {
    const client = await start({ API_KEYS_MCP_DB: relative });
    const outcome = await client.call("create_api_key", { name: "nowhere" });
    expect(outcome.ok).toBe(false);
    expect((outcome as Extract<CallOutcome, { ok: false }>).code).toBe("ERR_CONFIG");
    expect((outcome as Extract<CallOutcome, { ok: false }>).text).toContain("API_KEYS_MCP_DB must be an absolute path");
    expect((outcome as Extract<CallOutcome, { ok: false }>).text).toContain("set API_KEYS_MCP_DB");
    expect(readdirSync(cwd)).toEqual([]);
    expect(readdirSync(home)).toEqual([]);
    expect(readdirSync(root.path).sort()).toEqual(["cwd", "home"]);
  });
});

describe("openDatabase and the database's directory", () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  it("does not create a missing directory unless asked, and says so with its own error", () => {
    const path = join(dir.path, "missing", "keys.db");
    expect(() => openDatabase(path)).toThrow(DatabaseDirectoryMissingError);
    expect(existsSync(join(dir.path, "missing"))).toBe(false);
  });

  it("creates the directory owner-only when asked", () => {
    const path = join(dir.path, "made", "nested", "keys.db");
    openDatabase(path, { createDirectory: true }).close();
    expect(mode(join(dir.path, "made"))).toBe(0o700);
    expect(mode(join(dir.path, "made", "nested"))).toBe(0o700);
    expect(mode(path)).toBe(0o600);
  });

  it("answers ERR_CONFIG saying the file is not a database when API_KEYS_MCP_DB names some other file", async () => {
    const path = join(dir.path, "notes.txt");
    writeFileSync(path, "not a database, just some text that is long enough to have a header\n".repeat(10));
    const server = await startTestServer({ env: { API_KEYS_MCP_DB: path, API_KEYS_MCP_TOKEN: await merchantToken("merchant_notadb") } });
    try {
      const outcome = await server.call("list_api_keys", {});
      expect(outcome).toMatchObject({ ok: false, code: "ERR_CONFIG" });
      expect((outcome as Extract<CallOutcome, { ok: false }>).text).toContain(
        "is not an SQLite database. Ask the operator to set API_KEYS_MCP_DB to the key database file",
      );
    } finally {
      await server.close();
    }
  });
});

describe("native module that does not load (MCP-NOTES)", () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  /** A file where the addon should be: junk bytes, like a binary for another platform. */
  function junkAddon(bytes: Buffer): string {
    const path = join(dir.path, "x.node");
    writeFileSync(path, bytes);
    return path;
  }
  const fourKilobytesOfJunk = () => Buffer.alloc(4096, "junk-binary-");

  it("throws NativeModuleError saying to run npm rebuild better-sqlite3", () => {
    const binding = junkAddon(fourKilobytesOfJunk());
    let thrown: unknown;
    try {
      openDatabase(join(dir.path, "keys.db"), { nativeBinding: binding }).close();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(NativeModuleError);
    expect((thrown as Error).name).toBe("NativeModuleError");
    expect((thrown as Error).message).toContain("`npm rebuild better-sqlite3`");
    expect((thrown as Error).message).toContain(process.version);
    expect((thrown as Error).message).toContain(`NODE_MODULE_VERSION ${process.versions.modules}`);
  });

  // A truncated addon (an interrupted install or copy) fails to load with "file too short",
  // which src/store/database.ts's NATIVE_LOAD_FAILURE pattern does not know: the raw loader
  // error comes out instead of the rebuild advice.
  it("also recognises a truncated addon", () => {
    const binding = junkAddon(Buffer.from("not a binary\n"));
    expect(() => openDatabase(join(dir.path, "keys.db"), { nativeBinding: binding })).toThrow(NativeModuleError);
  });

  it("answers calls with ERR_CONFIG naming the rebuild, with no path, and logs the fix", async () => {
    const binding = junkAddon(fourKilobytesOfJunk());
    const dbPath = join(dir.path, "keys.db");
    let opened = 0;
    const server = await startTestServer({
      env: { API_KEYS_MCP_DB: dbPath, API_KEYS_MCP_TOKEN: await merchantToken("merchant_native") },
      openDb: (path) => {
        opened += 1;
        return openDatabase(path, { nativeBinding: binding });
      },
    });
    try {
      // The binding failed to load: createServices asked for the database, and got none.
      expect(opened).toBe(1);
      expect(server.db).toBeNull();
      for (const [tool, args] of [
        ["create_api_key", { name: "x" }],
        ["list_api_keys", {}],
      ] as const) {
        const outcome = await server.call(tool, args);
        expect(outcome.ok, tool).toBe(false);
        if (outcome.ok) continue;
        expect(outcome.code, tool).toBe("ERR_CONFIG");
        expect(outcome.text, tool).toContain("`npm rebuild better-sqlite3`");
        expect(outcome.text, tool).not.toContain(dir.path);
        expect(outcome.text, tool).not.toContain(".node");
        expect(outcome.text, tool).not.toMatch(/\/[\w.-]+\/[\w.-]+/);
      }
      const failure = server.logs.find((log) => log.msg === "database_open_failed");
      expect(failure).toMatchObject({ level: "error", error: { name: "NativeModuleError" } });
      expect((failure!.error as { message: string }).message).toContain("npm rebuild better-sqlite3");
    } finally {
      await server.close();
    }
  });
});
