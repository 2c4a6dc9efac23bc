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
export function createLogger(options: { level: LogLevel; write: (line: string) => void; clock?: Clock }): Logger {
  const threshold = SEVERITY[options.level];
  const clock = options.clock ?? Date.now;
  const emit = (level: Exclude<LogLevel, "silent">, message: string, fields?: LogFields) => {
    if (SEVERITY[level] < threshold) return;
    const record = { time: isoTime(clock()), level, msg: message, ...fields };
    // The replacer costs on every key, so only lines that carry an error pay for it.
    const line = fields && hasError(fields) ? JSON.stringify(record, errorsAsObjects) : JSON.stringify(record);
    options.write(redact(line));
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

/**
 * Gathers lines and hands them to `write` in one piece at the end of the event-loop turn: under
 * load, one stderr write carries many calls' lines instead of one syscall each. `flush()` writes
 * at once (on shutdown, before the process exits).
 */
export function createLineBuffer(write: (chunk: string) => void): { write: (line: string) => void; flush: () => void } {
  let pending: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending.length === 0) return;
    const chunk = `${pending.join("\n")}\n`;
    pending = [];
    write(chunk);
  };
  return {
    write(line) {
      pending.push(line);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}
