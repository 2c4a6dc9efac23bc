import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The files `npm publish` would ship, as npm itself lists them (dist/ is built by globalSetup). */
function packedFiles(): string[] {
  // --ignore-scripts: `prepare` would rebuild dist/ under the feet of suites running beside this one.
  const output = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT, encoding: "utf8" });
  const [pack] = JSON.parse(output) as [{ files: { path: string }[] }];
  return pack.files.map((file) => file.path);
}

describe("the published package", () => {
  let files: string[];
  beforeAll(() => {
    files = packedFiles();
  }, 60_000);

  it("carries the Apache-2.0 license text its package.json declares", () => {
    expect(files).toContain("LICENSE");
    const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { license: string };
    expect(manifest.license).toBe("Apache-2.0");
    const license = readFileSync(join(ROOT, "LICENSE"), "utf8");
    expect(license).toContain("Apache License\n                           Version 2.0, January 2004");
    expect(license).toContain("END OF TERMS AND CONDITIONS");
  });

  it("ships every file its entry points name", () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { main: string; types: string; bin: Record<string, string> };
    for (const entry of [manifest.main, manifest.types, ...Object.values(manifest.bin)]) {
      expect(files).toContain(posix.normalize(entry));
    }
  });

  // A map whose sources are not in the package sends a debugger or `--enable-source-maps` to
  // files that do not exist. Maps are left out of the package (see package.json `files`); this
  // holds whichever way that is decided.
  it("ships no source map without the sources it points at", () => {
    const missing: string[] = [];
    for (const map of files.filter((file) => file.endsWith(".map"))) {
      const { sources, sourceRoot = "" } = JSON.parse(readFileSync(join(ROOT, map), "utf8")) as { sources: string[]; sourceRoot?: string };
      for (const source of sources) {
        const shipped = posix.normalize(posix.join(dirname(map), sourceRoot, source));
        if (!files.includes(shipped)) missing.push(`${map} -> ${shipped}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
