import type { Clock } from "./clock.js";
import { isoTime } from "./keys/iso-time.js";

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const SEVERITY: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

// Anything shaped like a JWS (base64url JSON header, always starting "eyJ") or like an API key
// with more than the 4 body characters of its display prefix. Redaction runs on the finished
// line, so a secret cannot slip through inside an error message or a nested field.
const JWT_LIKE = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g;
const API_KEY_LIKE = /\b(sk|pk)_(test|live)_[0-9A-Za-z]{5,}/g;

/** Removes anything that looks like a token or an API key. */
export function redact(text: string): string {
  return text.replace(JWT_LIKE, "[REDACTED_JWT]").replace(API_KEY_LIKE, "$1_$2_[REDACTED]");
}

/**
 * The one logger: JSON lines, written through `write` (stderr in the server, because stdout
 * carries the MCP protocol), filtered by level, redacted.
 */
export function createLogger(options: {
  level: LogLevel;
  write: (line: string) => void;
  clock?: Clock;
  /**
   * Runs the formatting and writing of a line later, off the caller's path (the server passes
   * a line buffer's `defer`, so a tool call's line is built after its response has gone out).
   * Unset: at once.
   */
  defer?: (task: () => void) => void;
}): Logger {
  const threshold = SEVERITY[options.level];
  const clock = options.clock ?? Date.now;
  const defer = options.defer;
  const emit = (level: Exclude<LogLevel, "silent">, message: string, fields?: LogFields) => {
    if (SEVERITY[level] < threshold) return;
    const time = clock();
    const task = () => {
      const record = { time: isoTime(time), level, msg: message, ...fields };
      // The replacer costs on every key, so only lines that carry an error pay for it.
      const line = fields && hasError(fields) ? JSON.stringify(record, errorsAsObjects) : JSON.stringify(record);
      options.write(redact(line));
    };
    if (defer) defer(task);
    else task();
  };
  return {
    debug: (message, fields) => emit("debug", message, fields),
    info: (message, fields) => emit("info", message, fields),
    warn: (message, fields) => emit("warn", message, fields),
    error: (message, fields) => emit("error", message, fields),
  };
}

function hasError(fields: LogFields): boolean {
  for (const key in fields) if (fields[key] instanceof Error) return true;
  return false;
}

function errorsAsObjects(_key: string, value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  const { name, message, stack, cause } = value;
  const code = (value as { code?: unknown }).code;
  return { name, message, ...(code === undefined ? {} : { code }), stack, ...(cause === undefined ? {} : { cause }) };
}

/** How long a log line may wait in memory before it is written. */
const LOG_FLUSH_MS = 50;
/** Queued lines at which the buffer writes at the end of the turn instead of waiting. */
const LOG_FLUSH_LINES = 512;

/**
 * Collects log lines and writes them together, at most `delayMs` after the first of them, or at
 * the end of the turn once `maxLines` are waiting. Building and writing a line per call, even
 * after the response, cost a sequential `get_api_key` about 30 µs of CPU and 12 µs of its round
 * trip (measured); in bulk, later, each line costs a fraction of that. `defer` postpones building
 * a line to that moment too. The price: a SIGKILL loses the last `delayMs` of lines (the audit
 * log, in the database, loses nothing). `flush()` writes everything now; the server calls it
 * before it exits, however it exits.
 */
export function createLineBuffer(
  write: (chunk: string) => void,
  { delayMs = LOG_FLUSH_MS, maxLines = LOG_FLUSH_LINES }: { delayMs?: number; maxLines?: number } = {},
): {
  write: (line: string) => void;
  defer: (task: () => void) => void;
  flush: () => void;
} {
  // Lines and deferred lines share one queue, so they come out in the order they were logged;
  // a deferred task writes its line straight into the chunk being flushed.
  let queue: (string | (() => void))[] = [];
  let chunk: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let soon = false;
  let flushing = false;
  const take = (item: string | (() => void)) => {
    if (typeof item === "string") chunk.push(item);
    else item();
  };
  const enqueue = (item: string | (() => void)) => {
    if (flushing) return take(item);
    queue.push(item);
    if (queue.length >= maxLines && !soon) {
      soon = true;
      setImmediate(flush);
    } else if (timer === undefined) {
      // Unreferenced: waiting lines never keep the process alive; exit paths call flush().
      timer = setTimeout(flush, delayMs);
      timer.unref();
    }
  };
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    soon = false;
    const due = queue;
    queue = [];
    flushing = true;
    try {
      for (const item of due) take(item);
    } finally {
      flushing = false;
    }
    if (chunk.length === 0) return;
    const text = `${chunk.join("\n")}\n`;
    chunk = [];
    write(text);
  };
  return {
    write: enqueue,
    defer: enqueue,
    flush,
  };
}
