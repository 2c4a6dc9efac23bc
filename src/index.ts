#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { readFileHead } from "./auth/token-source.js";
import { main } from "./cli/main.js";

// The entry point: the only module that touches `process`. Everything else receives what it
// needs through `Io`, so it can run in tests without a process of its own.
const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

main(process.argv.slice(2), {
  env: process.env,
  platform: process.platform,
  homedir: homedir(),
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  readFileSync: (path) => readFileSync(path, "utf8"),
  readTokenFile: readFileHead,
  onSignal: (signal, handler) => process.on(signal, handler),
  onExit: (handler) => process.on("exit", handler),
  exit: (code) => process.exit(code),
  version,
}).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`api-keys-mcp: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
