import { describe, expect, it } from "vitest";
import { SLICE_ROWS, UsageBatcher, type UsageDelta } from "../../src/store/usage-batcher.js";

const HOUR = 3_600_000;

/** Counts `uses` of each key `ref` in turn, the i-th use of the whole run at time 1000 + i. */
function countRoundRobin(batcher: UsageBatcher<number>, refs: number, uses: number): Map<number, UsageDelta> {
  const expected = new Map<number, UsageDelta>();
  for (let i = 0; i < refs * uses; i++) {
    const ref = (i * 7) % refs;
    batcher.record(ref, 1000 + i);
    const entry = expected.get(ref);
    expected.set(ref, { count: (entry?.count ?? 0) + 1, lastUsedAt: 1000 + i });
  }
  return expected;
}

describe("UsageBatcher: counts in memory, written in batches", () => {
  it("counts thousands of different keys exactly, shows them until written, and writes each once", async () => {
    const writes: Map<number, UsageDelta>[] = [];
    const batcher = new UsageBatcher<number>((batch) => void writes.push(batch), { intervalMs: HOUR });
    const expected = countRoundRobin(batcher, 5003, 3);
    expect(batcher.pending(0)).toEqual(expected.get(0));
    expect(batcher.pending(5002)).toEqual(expected.get(5002));
    expect(batcher.pending(5003)).toBeUndefined();
    await batcher.flush();
    // In slices of SLICE_ROWS keys, consecutive and ascending, that add up to the batch.
    expect(writes.map((slice) => slice.size)).toEqual([SLICE_ROWS, SLICE_ROWS, SLICE_ROWS, SLICE_ROWS, SLICE_ROWS, 5003 - 5 * SLICE_ROWS]);
    const written = writes.flatMap((slice) => [...slice]);
    expect(written.map(([ref]) => ref)).toEqual([...expected.keys()].sort((a, b) => a - b));
    expect(new Map(written)).toEqual(expected);
    expect(batcher.pending(0)).toBeUndefined();
    await batcher.flush();
    expect(writes).toHaveLength(6);
    await batcher.close();
  });

  it("tells apart row ids that share low bits, past 2^31 and 2^32, and 0", async () => {
    const writes: Map<number, UsageDelta>[] = [];
    const batcher = new UsageBatcher<number>((batch) => void writes.push(batch), { intervalMs: HOUR });
    const refs = [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 40, 2 ** 40 + 2 ** 32, Number.MAX_SAFE_INTEGER];
    for (let round = 0; round < 300; round++) refs.forEach((ref, i) => i <= round % refs.length && batcher.record(ref, round));
    const expected = refs.map((_, i) => Array.from({ length: 300 }, (_, round) => round).filter((round) => i <= round % refs.length));
    refs.forEach((ref, i) => expect(batcher.pending(ref)).toEqual({ count: expected[i]!.length, lastUsedAt: Math.max(...expected[i]!) }));
    expect(batcher.pending(3)).toBeUndefined();
    await batcher.flush();
    expect([...writes[0]!.keys()]).toEqual(refs);
    refs.forEach((ref) => expect(batcher.pending(ref)).toBeUndefined());
    await batcher.close();
  });

  it("lets the event loop turn between slices, and a slice stops being pending in the turn it is written", async () => {
    const stored = new Map<number, number>();
    const seen: string[] = [];
    const miscounts: string[] = [];
    const batcher = new UsageBatcher<number>(
      (slice) => {
        for (const [ref, { count }] of slice) stored.set(ref, (stored.get(ref) ?? 0) + count);
        seen.push(`write ${[...slice.keys()].join(",")}`);
        // A read in the next microtask sees each use once: in the store or still pending.
        queueMicrotask(() => {
          for (const ref of [1, 2, 3, 4, 5]) {
            const counted = (stored.get(ref) ?? 0) + (batcher.pending(ref)?.count ?? 0);
            if (counted !== ref) miscounts.push(`key ${ref}: ${counted} uses`);
          }
        });
      },
      { intervalMs: HOUR, sliceRows: 2 },
    );
    for (const ref of [5, 3, 1, 4, 2]) for (let use = 0; use < ref; use++) batcher.record(ref, 1000 + use);
    const immediate = () => setImmediate(() => (seen.push("turn"), seen.length < 20 && immediate()));
    immediate();
    await batcher.flush();
    expect(miscounts).toEqual([]);
    expect(seen.filter((entry) => entry.startsWith("write"))).toEqual(["write 1,2", "write 3,4", "write 5"]);
    // Other callbacks ran between the slices.
    const at = (entry: string) => seen.indexOf(entry);
    expect(seen.slice(at("write 1,2"), at("write 3,4"))).toContain("turn");
    expect(seen.slice(at("write 3,4"), at("write 5"))).toContain("turn");
    expect([...stored]).toEqual([...[1, 2, 3, 4, 5].map((ref) => [ref, ref])]);
    await batcher.close();
  });

  it("keeps the slices written before a failed one, and the failed and later slices' counts for the next batch", async () => {
    const errors: unknown[] = [];
    const writes: number[][] = [];
    let failAt: number | undefined = 3;
    const batcher = new UsageBatcher<number>(
      (slice) => {
        if (slice.has(failAt!)) throw new Error("busy");
        writes.push([...slice.keys()]);
      },
      { intervalMs: HOUR, sliceRows: 2, onError: (error) => errors.push(error) },
    );
    for (const ref of [1, 2, 3, 4, 5]) batcher.record(ref, 10 * ref);
    await batcher.flush();
    expect(writes).toEqual([[1, 2]]);
    expect(errors).toHaveLength(1);
    expect([1, 2, 3, 4, 5].map((ref) => batcher.pending(ref)?.count)).toEqual([undefined, undefined, 1, 1, 1]);
    failAt = undefined;
    await batcher.flush();
    expect(writes).toEqual([[1, 2], [3, 4], [5]]);
    expect(batcher.pending(5)).toBeUndefined();
    await batcher.close();
  });

  it("while a write is in flight, shows its counts with the ones counted since, and keeps one write at a time", async () => {
    const writes: Map<number, UsageDelta>[] = [];
    let finish!: () => void;
    const batcher = new UsageBatcher<number>(
      (batch) => {
        writes.push(batch);
        return new Promise<void>((resolve) => (finish = resolve));
      },
      { intervalMs: HOUR },
    );
    batcher.record(1, 100);
    batcher.record(1, 200);
    batcher.record(2, 100);
    const first = batcher.flush();
    // The last use is the latest of both batches, whichever batch holds it.
    batcher.record(1, 150);
    batcher.record(2, 300);
    expect(batcher.pending(1)).toEqual({ count: 3, lastUsedAt: 200 });
    expect(batcher.pending(2)).toEqual({ count: 2, lastUsedAt: 300 });
    const second = batcher.flush();
    expect(writes).toHaveLength(1);
    finish();
    await first;
    expect(batcher.pending(1)).toEqual({ count: 1, lastUsedAt: 150 });
    await new Promise((resolve) => setImmediate(resolve));
    finish();
    await second;
    expect(writes).toEqual([
      new Map([
        [1, { count: 2, lastUsedAt: 200 }],
        [2, { count: 1, lastUsedAt: 100 }],
      ]),
      new Map([
        [1, { count: 1, lastUsedAt: 150 }],
        [2, { count: 1, lastUsedAt: 300 }],
      ]),
    ]);
    expect(batcher.pending(1)).toBeUndefined();
    await batcher.close();
  });

  it("keeps the counts of a failed write, adds them to the next batch, and reports the error", async () => {
    const errors: unknown[] = [];
    const writes: Map<number, UsageDelta>[] = [];
    let fail = true;
    const batcher = new UsageBatcher<number>(
      (batch) => {
        if (fail) return Promise.reject(new Error("busy"));
        writes.push(batch);
      },
      { intervalMs: HOUR, onError: (error) => errors.push(error) },
    );
    const expected = countRoundRobin(batcher, 300, 2);
    await batcher.flush();
    expect(errors).toHaveLength(1);
    expect(batcher.pending(7)).toEqual(expected.get(7));
    batcher.record(7, 99_999);
    fail = false;
    await batcher.flush();
    expect(writes).toHaveLength(1);
    expect(writes[0]!.get(7)).toEqual({ count: expected.get(7)!.count + 1, lastUsedAt: 99_999 });
    expect(writes[0]!.size).toBe(300);
    await batcher.close();
  });

  it("treats a write that throws like one that rejects", async () => {
    const errors: unknown[] = [];
    const batcher = new UsageBatcher<number>(
      () => {
        throw new Error("locked");
      },
      { intervalMs: HOUR, onError: (error) => errors.push(error) },
    );
    batcher.record(3, 10);
    await batcher.flush();
    expect(errors).toHaveLength(1);
    expect(batcher.pending(3)).toEqual({ count: 1, lastUsedAt: 10 });
  });
});
