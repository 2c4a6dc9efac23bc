import type { Readable, Writable } from "node:stream";

/**
 * Everything a command needs from the process, gathered by `src/index.ts`, the only module
 * that touches `process`. Commands stay testable in-process.
 */
export interface Io {
  env: Record<string, string | undefined>;
  platform: NodeJS.Platform;
  homedir: string;
  stdin: Readable;
  /** The MCP channel when serving; command output (a token, help) otherwise. */
  stdout: Writable;
  stderr: Writable;
  readFileSync: (path: string) => string;
  /** Reads API_KEYS_MCP_TOKEN_FILE, at most `maxBytes` of it. */
  readTokenFile: (path: string, maxBytes: number) => Promise<string>;
  onSignal: (signal: "SIGINT" | "SIGTERM", handler: () => void) => void;
  /** Runs `handler` synchronously as the process exits, however it exits. */
  onExit: (handler: () => void) => void;
  exit: (code: number) => void;
  version: string;
}
