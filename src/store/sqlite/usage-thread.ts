import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { UsageDelta } from "../usage-batcher.js";

/** Adds a batch's counts to what is stored, never overwriting: several processes may count. */
export const UPSERT_USAGE = `INSERT INTO key_usage (key_seq, usage_count, last_used_at) VALUES (?, ?, ?)
  ON CONFLICT (key_seq) DO UPDATE SET usage_count = usage_count + excluded.usage_count,
    last_used_at = MAX(COALESCE(last_used_at, 0), excluded.last_used_at)`;

/**
 * The thread's program. Plain CommonJS run by `eval`, so that it is the same code whether this
 * module runs compiled or from its TypeScript source, and it loads the same better-sqlite3 (by
 * absolute path) whatever the working directory. Rows are written in row-id order, so that a
 * batch walks the table's pages once, in order.
 */
const PROGRAM = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma("busy_timeout = " + workerData.busyTimeoutMs);
db.pragma("synchronous = NORMAL");
const upsert = db.prepare(workerData.sql);
const write = db.transaction((seqs, counts, lasts) => {
  const order = Array.from(seqs.keys()).sort((a, b) => seqs[a] - seqs[b]);
  for (const i of order) upsert.run(seqs[i], counts[i], lasts[i]);
});
parentPort.on("message", (message) => {
  if (message === "close") {
    db.close();
    parentPort.close();
    return;
  }
  try {
    write.immediate(message.seqs, message.counts, message.lasts);
    parentPort.postMessage({ id: message.id });
  } catch (error) {
    parentPort.postMessage({ id: message.id, error: { message: String(error && error.message), code: error && error.code } });
  }
});
`;

const driver = createRequire(import.meta.url).resolve("better-sqlite3");

export interface UsageThreadOptions {
  /** How long a write waits for another connection's write lock (it waits off the verifying thread). */
  busyTimeoutMs: number;
}

/**
 * Writes batches of key usage from a thread of its own, on a connection of its own to the same
 * file. The batch of a busy second on a large file touches thousands of pages: at a million keys
 * and tens of thousands of different keys a second, hundreds of milliseconds of writing and
 * checkpointing, during which the thread that verifies keys would answer nothing. Reads never
 * wait for these writes: the repository shows its own unwritten counts until a write has
 * committed (UsageBatcher). A write may also wait out another process's lock without holding
 * up a verification.
 *
 * If the thread dies, its in-flight write fails (the batcher keeps those counts for the next
 * one) and the next write starts another. The thread keeps the process alive only while a write
 * is in flight.
 */
export class UsageWriterThread {
  readonly #path: string;
  readonly #options: UsageThreadOptions;
  /** The running thread, and the writes it has not answered yet. */
  #thread: { worker: Worker; calls: Map<number, { resolve: () => void; reject: (error: Error) => void }> } | undefined;
  #nextId = 0;

  constructor(path: string, options: UsageThreadOptions) {
    this.#path = path;
    this.#options = options;
    // Started now rather than at the first write, so its start-up (tens of milliseconds) is
    // over before there is anything to write.
    this.#start();
  }

  write(batch: ReadonlyMap<number, UsageDelta>): Promise<void> {
    const seqs = new Float64Array(batch.size);
    const counts = new Float64Array(batch.size);
    const lasts = new Float64Array(batch.size);
    let i = 0;
    for (const [seq, delta] of batch) {
      seqs[i] = seq;
      counts[i] = delta.count;
      lasts[i] = delta.lastUsedAt;
      i++;
    }
    const { worker, calls } = this.#start();
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      calls.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, seqs, counts, lasts }, [seqs.buffer, counts.buffer, lasts.buffer]);
    });
  }

  /** Ends the thread once its write is done (call after the last write has settled). */
  async close(): Promise<void> {
    const thread = this.#thread;
    if (!thread) return;
    this.#thread = undefined;
    thread.worker.ref();
    await new Promise<void>((resolve) => {
      thread.worker.once("exit", () => resolve());
      thread.worker.postMessage("close");
    });
  }

  #start() {
    if (this.#thread) return this.#thread;
    const worker = new Worker(PROGRAM, {
      eval: true,
      // Not the host's flags: --input-type=module would make the program an ES module.
      execArgv: [],
      workerData: { driver, path: this.#path, busyTimeoutMs: this.#options.busyTimeoutMs, sql: UPSERT_USAGE },
    });
    const thread = { worker, calls: new Map<number, { resolve: () => void; reject: (error: Error) => void }>() };
    worker.on("message", (message: { id: number; error?: { message: string; code?: string } }) => {
      const call = thread.calls.get(message.id);
      if (!call) return;
      thread.calls.delete(message.id);
      if (thread.calls.size === 0) worker.unref();
      if (message.error) call.reject(Object.assign(new Error(message.error.message), { code: message.error.code }));
      else call.resolve();
    });
    const fail = (error: Error) => {
      if (this.#thread === thread) this.#thread = undefined;
      for (const call of thread.calls.values()) call.reject(error);
      thread.calls.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the usage writer thread ended (exit code ${code})`)));
    // After the listeners: adding a "message" listener refs the worker's port again.
    worker.unref();
    this.#thread = thread;
    return thread;
  }
}
