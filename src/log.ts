import type { Clock } from "./clock.js";
import { isoTime } from "./keys/iso-time.js";
import { redact, shorten } from "./redact.js";

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

/** Longest a string field may be, in UTF-8 bytes, before it is cut (after redaction). */
export const MAX_FIELD_BYTES = 2048;
/** Longest a log line may be, in UTF-8 bytes, newline excluded. */
export const MAX_LINE_BYTES = 16 * 1024;

/**
 * The one logger: JSON lines, written through `write` (stderr in the server, because stdout
 * carries the MCP protocol), filtered by level, redacted, bounded.
 *
 * Redaction runs on the finished line, so a secret cannot slip through inside an error message
 * or a nested field; it takes time linear in the line (see redact.ts). Bounds: a string field
 * longer than `MAX_FIELD_BYTES` is redacted and cut before the line is built (a client's
 * megabyte is never copied into a line), and a line still longer than `MAX_LINE_BYTES` is
 * replaced by one that carries its cut head. Both cuts say how many bytes they removed.
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
    // Cut now, not when the line is built: a deferred line must not hold on to a huge string.
    const bounded = fields && boundStrings(fields);
    const task = () => {
      const record = { time: isoTime(time), level, msg: message, ...bounded };
      // The replacer costs on every key, so only lines with nested values (errors) pay for it.
      const line = bounded && hasObject(bounded) ? JSON.stringify(record, boundedValues) : JSON.stringify(record);
      options.write(capLine(redact(line), record));
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

/** Whether a string may be longer than `bytes` in UTF-8 (a UTF-16 unit is at most 3 bytes). */
const mayExceed = (text: string, bytes: number): boolean => text.length > bytes / 3;

/** `fields` with every long top-level string shortened; the same object when none is. */
function boundStrings(fields: LogFields): LogFields {
  let bounded: LogFields | undefined;
  for (const key in fields) {
    const value = fields[key];
    if (typeof value !== "string" || !mayExceed(value, MAX_FIELD_BYTES)) continue;
    bounded ??= { ...fields };
    bounded[key] = shorten(value, MAX_FIELD_BYTES);
  }
  return bounded ?? fields;
}

function hasObject(fields: LogFields): boolean {
  for (const key in fields) if (typeof fields[key] === "object" && fields[key] !== null) return true;
  return false;
}

/** JSON.stringify replacer: errors as plain objects, long nested strings shortened. */
function boundedValues(_key: string, value: unknown): unknown {
  if (typeof value === "string") return mayExceed(value, MAX_FIELD_BYTES) ? shorten(value, MAX_FIELD_BYTES) : value;
  if (!(value instanceof Error)) return value;
  const { name, message, stack, cause } = value;
  const code = (value as { code?: unknown }).code;
  return { name, message, ...(code === undefined ? {} : { code }), stack, ...(cause === undefined ? {} : { cause }) };
}

/** Room a capped line keeps for its time, level and field names besides the head and message. */
const CAPPED_LINE_ROOM = 256;

/**
 * `line` if it fits in `MAX_LINE_BYTES`; otherwise a line with the same time, level and message
 * whose `head` is the start of the redacted line, cut between runs, with the count of bytes cut.
 * JSON-escaping at most doubles the head (the line holds no raw control characters): hence half.
 */
function capLine(line: string, record: { time: string; level: string; msg: string }): string {
  if (!mayExceed(line, MAX_LINE_BYTES) || Buffer.byteLength(line) <= MAX_LINE_BYTES) return line;
  const msg = shorten(record.msg, MAX_FIELD_BYTES);
  const head = shorten(line, Math.floor((MAX_LINE_BYTES - CAPPED_LINE_ROOM - 2 * Buffer.byteLength(msg)) / 2));
  return redact(JSON.stringify({ time: record.time, level: record.level, msg, truncated: true, head }));
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
