import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";

/**
 * WAL checkpoints on a thread of their own. SQLite's automatic checkpoint runs inside whichever
 * commit crosses 1000 WAL pages and copies them back to the database with fsyncs, by far the most
 * expensive thing a commit can do, on the thread that answers calls. Here the server's connection
 * never checkpoints; a worker thread with its own connection runs a PASSIVE checkpoint (which never
 * blocks readers or writers, in any process) every `everyMs`. Started on the first write, so a
 * session that only reads never pays for the thread.
 */
export class BackgroundCheckpointer {
  readonly #path: string;
  readonly #everyMs: number;
  #worker: Worker | undefined;
  #stopped = false;

  constructor(db: Database.Database, everyMs: number) {
    this.#path = db.name;
    this.#everyMs = everyMs;
    db.pragma("wal_autocheckpoint = 0");
  }

  /** Called after each commit; starts the thread the first time. */
  noteWrite(): void {
    if (this.#worker || this.#stopped) return;
    const addon = createRequire(import.meta.url).resolve("better-sqlite3");
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { addon, path: this.#path, everyMs: this.#everyMs } });
    // Never the reason the process stays alive; and a failing thread must not take the server down.
    this.#worker.unref();
    this.#worker.on("error", () => {});
  }

  /** Stops the thread after one last checkpoint round. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const worker = this.#worker;
    if (!worker) return;
    this.#worker = undefined;
    const exited = new Promise((resolve) => worker.once("exit", resolve));
    // Unreferenced, the thread would let the process end right here, before the caller's
    // remaining shutdown work (the last usage counts) had run.
    worker.ref();
    worker.postMessage("stop");
    await exited;
  }
}

// Plain CommonJS, evaluated in the worker: a file of its own would need a build step for tests
// that run the TypeScript sources.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.addon);
const db = new Database(workerData.path);
db.pragma("busy_timeout = 5000");
db.pragma("wal_autocheckpoint = 0");
const checkpoint = () => {
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {}
};
const timer = setInterval(checkpoint, workerData.everyMs);
parentPort.once("message", () => {
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.close();
});
`;
