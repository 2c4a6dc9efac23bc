import { describe, expect, it } from "vitest";
import { RateLimiter } from "../../src/auth/rate-limit.js";
import { testClock } from "../helpers/server.js";

/** Takes `count` tokens and returns the admissions. */
function takeMany(limiter: RateLimiter, key: string, count: number) {
  return Array.from({ length: count }, () => limiter.take(key));
}

describe("RateLimiter (A7)", () => {
  it("admits a burst up to the capacity, then refuses", () => {
    const limiter = new RateLimiter(5, testClock(0));
    expect(takeMany(limiter, "a", 5)).toEqual(Array(5).fill({ ok: true }));
    expect(limiter.take("a")).toEqual({ ok: false, retryAfterSeconds: 12 });
    expect(limiter.take("a")).toEqual({ ok: false, retryAfterSeconds: 12 });
  });

  it("keeps a bucket per key", () => {
    const limiter = new RateLimiter(2, testClock(0));
    takeMany(limiter, "a", 2);
    expect(limiter.take("a").ok).toBe(false);
    expect(takeMany(limiter, "b", 2)).toEqual([{ ok: true }, { ok: true }]);
    expect(limiter.take("b").ok).toBe(false);
  });

  it("refills at the per-minute rate", () => {
    const clock = testClock(1_000_000);
    const limiter = new RateLimiter(6, clock); // one token every 10 s
    takeMany(limiter, "a", 6);
    expect(limiter.take("a")).toEqual({ ok: false, retryAfterSeconds: 10 });

    clock.advance(9_999);
    expect(limiter.take("a")).toEqual({ ok: false, retryAfterSeconds: 1 });
    clock.advance(1);
    expect(limiter.take("a")).toEqual({ ok: true });
    expect(limiter.take("a").ok).toBe(false);

    clock.advance(30_000);
    expect(takeMany(limiter, "a", 4).map((admission) => admission.ok)).toEqual([true, true, true, false]);
  });

  it("never refills beyond the capacity", () => {
    const clock = testClock(0);
    const limiter = new RateLimiter(3, clock);
    limiter.take("a");
    clock.advance(3_600_000);
    expect(takeMany(limiter, "a", 4).map((admission) => admission.ok)).toEqual([true, true, true, false]);
  });

  it("says how many whole seconds until the next token, rounded up", () => {
    const clock = testClock(0);
    const limiter = new RateLimiter(1, clock);
    expect(limiter.take("a")).toEqual({ ok: true });
    expect(limiter.take("a")).toEqual({ ok: false, retryAfterSeconds: 60 });
    clock.advance(15_000);
    expect(limiter.take("a")).toEqual({ ok: false, retryAfterSeconds: 45 });
    clock.advance(44_500);
    expect(limiter.take("a")).toEqual({ ok: false, retryAfterSeconds: 1 });
    clock.advance(500);
    expect(limiter.take("a")).toEqual({ ok: true });
  });

  it("asks for at least one second", () => {
    const clock = testClock(0);
    const limiter = new RateLimiter(600, clock); // one token every 100 ms
    takeMany(limiter, "a", 600);
    expect(limiter.take("a")).toEqual({ ok: false, retryAfterSeconds: 1 });
  });

  it("does not charge a refused call", () => {
    const clock = testClock(0);
    const limiter = new RateLimiter(1, clock);
    limiter.take("a");
    for (let i = 0; i < 10; i += 1) limiter.take("a");
    clock.advance(60_000);
    expect(limiter.take("a")).toEqual({ ok: true });
  });

  it("peeks without taking: says what take would answer and changes nothing", () => {
    const clock = testClock(0);
    const limiter = new RateLimiter(2, clock);
    expect(limiter.peek("a")).toEqual({ ok: true });
    for (let i = 0; i < 5; i += 1) limiter.peek("a");
    expect(takeMany(limiter, "a", 2)).toEqual([{ ok: true }, { ok: true }]);
    expect(limiter.peek("a")).toEqual({ ok: false, retryAfterSeconds: 30 });
    clock.advance(10_000);
    expect(limiter.peek("a")).toEqual({ ok: false, retryAfterSeconds: 20 });
    clock.advance(20_000);
    expect(limiter.peek("a")).toEqual({ ok: true });
    expect(limiter.take("a")).toEqual({ ok: true });
    expect(limiter.peek("a").ok).toBe(false);
  });

  it("keeps at most maxKeys buckets, dropping the least recently used", () => {
    const clock = testClock(0);
    const limiter = new RateLimiter(1, clock, 3);
    for (const key of ["a", "b", "c"]) expect(limiter.take(key)).toEqual({ ok: true });
    // Touch "a" so that "b" becomes the least recently used.
    expect(limiter.take("a").ok).toBe(false);

    expect(limiter.take("d")).toEqual({ ok: true }); // drops "b"
    expect(limiter.take("a").ok).toBe(false);
    expect(limiter.take("c").ok).toBe(false);
    expect(limiter.take("d").ok).toBe(false);
    // "b" was forgotten, so it starts again with a full bucket (and drops "a", now the oldest).
    expect(limiter.take("b")).toEqual({ ok: true });
    expect(limiter.take("a")).toEqual({ ok: true });
  });

  it("stays bounded under many distinct keys", () => {
    const clock = testClock(0);
    const limiter = new RateLimiter(1, clock, 100);
    expect(limiter.take("first")).toEqual({ ok: true });
    for (let i = 0; i < 10_000; i += 1) limiter.take(`key-${i}`);
    // The 100 most recent keys are still remembered (taking a known key evicts nothing) ...
    for (let i = 9_900; i < 10_000; i += 1) expect(limiter.take(`key-${i}`).ok).toBe(false);
    // ... and "first" was evicted long ago, so it starts with a full bucket again.
    expect(limiter.take("first")).toEqual({ ok: true });
  });
});
