import { Readable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { limitLineLength } from "../../src/cli/line-limit.js";
import { fuzzParameters } from "../helpers/fuzz.js";

/** Feeds `chunks` through the limiter; returns what came out and the sizes it discarded. */
async function run(chunks: Buffer[], maxBytes: number): Promise<{ output: string; discarded: number[] }> {
  const discarded: number[] = [];
  const limiter = Readable.from(chunks).pipe(limitLineLength(maxBytes, (bytes) => discarded.push(bytes)));
  const out: Buffer[] = [];
  for await (const chunk of limiter) out.push(chunk as Buffer);
  return { output: Buffer.concat(out).toString("latin1"), discarded };
}

/** Cuts `data` at the given offsets (sorted, deduplicated) into chunks. */
function cut(data: Buffer, offsets: number[]): Buffer[] {
  const points = [...new Set(offsets.map((o) => o % (data.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...points, data.length]) {
    if (point > start) chunks.push(data.subarray(start, point));
    start = point;
  }
  return chunks;
}

describe("limitLineLength: stdin lines over the limit are dropped, the rest pass unchanged", () => {
  it("keeps a line of exactly the limit and drops one byte more, reporting its size with the newline", async () => {
    const { output, discarded } = await run([Buffer.from(`${"a".repeat(8)}\n${"b".repeat(9)}\nc\n`)], 8);
    expect(output).toBe(`${"a".repeat(8)}\nc\n`);
    expect(discarded).toEqual([10]);
  });

  it("drops a long line that arrives one byte at a time, and reads the next one", async () => {
    const data = Buffer.from(`${"x".repeat(100)}\n{"ok":1}\n`);
    const { output, discarded } = await run(cut(data, Array.from({ length: data.length }, (_, i) => i)), 16);
    expect(output).toBe('{"ok":1}\n');
    expect(discarded).toEqual([101]);
  });

  it("holds back an unterminated last line (the transport could not read it either)", async () => {
    expect(await run([Buffer.from("one\ntwo")], 8)).toEqual({ output: "one\n", discarded: [] });
  });

  // Whatever the line lengths and wherever the chunk boundaries fall, the output is exactly the
  // lines within the limit, in order, and each dropped line is reported once with its size.
  it("passes exactly the short lines for any content and any chunking", async () => {
    const line = fc.oneof(
      fc.string({ maxLength: 20 }).map((s) => s.replace(/\n/g, " ")),
      fc.nat({ max: 60 }).map((n) => "y".repeat(n)),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 10 }), fc.integer({ min: 1, max: 32 }), async (lines, offsets, max) => {
        const data = Buffer.from(lines.map((l) => `${l}\n`).join(""), "latin1");
        const { output, discarded } = await run(cut(data, offsets), max);
        const bytes = (l: string) => Buffer.byteLength(l, "latin1");
        expect(output).toBe(lines.filter((l) => bytes(l) <= max).map((l) => `${l}\n`).join(""));
        expect(discarded).toEqual(lines.filter((l) => bytes(l) > max).map((l) => bytes(l) + 1));
      }),
      fuzzParameters(300),
    );
  });
});
