import { readFileSync } from "node:fs";
import { Readable, Writable } from "node:stream";
import { readFileHead } from "../../src/auth/token-source.js";
import type { Io } from "../../src/cli/io.js";
import { main } from "../../src/cli/main.js";

export const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

/** A Writable that keeps everything written to it, as text. */
export class Capture extends Writable {
  text = "";
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.text += typeof chunk === "string" ? chunk : chunk.toString("utf8");
    done();
  }
}

export interface FakeIo extends Io {
  stdout: Capture;
  stderr: Capture;
}

/**
 * What `src/index.ts` hands to `main`, with the process's parts replaced: the environment is
 * exactly `env` (nothing inherited), the home directory is `homedir`, output is captured, files
 * are read from the real file system. For one-shot commands: stdin is empty, and a call to
 * exit() or to the serving hooks is a test failure, since no one-shot command makes one.
 */
export function fakeIo(env: Record<string, string | undefined>, homedir: string): FakeIo {
  const unexpected = (what: string) => () => {
    throw new Error(`a one-shot command called ${what}`);
  };
  return {
    env,
    platform: process.platform,
    homedir,
    stdin: Readable.from([]),
    stdout: new Capture(),
    stderr: new Capture(),
    readFileSync: (path) => readFileSync(path, "utf8"),
    readTokenFile: readFileHead,
    onSignal: unexpected("onSignal"),
    onExit: unexpected("onExit"),
    exit: unexpected("exit"),
    version: PACKAGE_VERSION,
  };
}

export interface CliRun {
  /** The exit code `main` resolved with. */
  code: number | undefined;
  stdout: string;
  stderr: string;
}

/**
 * Runs a one-shot command in-process, as `runCommand` (helpers/spawn.ts) runs the built one:
 * only PATH, HOME and `env` set, HOME being `home`. Use runCommand only where the process
 * itself is under test (its exit status, its entry point).
 */
export async function runCli(args: string[], env: Record<string, string>, home: string): Promise<CliRun> {
  const io = fakeIo({ PATH: process.env.PATH ?? "", HOME: home, ...env }, home);
  const code = await main(args, io);
  return { code, stdout: io.stdout.text, stderr: io.stderr.text };
}
