import type { Clock } from "../clock.js";

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export type Admission = { ok: true } | { ok: false; retryAfterSeconds: number };

/**
 * Token buckets in memory (A7): each key may burst up to `perMinute` calls and refills at
 * `perMinute` per minute. Memory is bounded: past `maxKeys`, the least recently refilled bucket
 * is dropped (it would have been full again soon anyway for an idle caller).
 */
export class RateLimiter {
  readonly #capacity: number;
  readonly #refillPerMs: number;
  readonly #clock: Clock;
  readonly #maxKeys: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(perMinute: number, clock: Clock, maxKeys = 10_000) {
    this.#capacity = perMinute;
    this.#refillPerMs = perMinute / 60_000;
    this.#clock = clock;
    this.#maxKeys = maxKeys;
  }

  /** Takes one token for `key`, or says how long until one is available. */
  take(key: string): Admission {
    const now = this.#clock();
    let bucket = this.#buckets.get(key);
    if (bucket) {
      bucket.tokens = this.#refilled(bucket, now);
      bucket.updatedAt = now;
      // Re-insert so Map order stays least-recently-used first.
      this.#buckets.delete(key);
    } else {
      bucket = { tokens: this.#capacity, updatedAt: now };
      if (this.#buckets.size >= this.#maxKeys) this.#buckets.delete(this.#buckets.keys().next().value!);
    }
    this.#buckets.set(key, bucket);
    if (bucket.tokens < 1) return this.#refusal(bucket.tokens);
    bucket.tokens -= 1;
    return { ok: true };
  }

  /** Whether `take(key)` would admit now, without taking anything or touching the bucket. */
  peek(key: string): Admission {
    const bucket = this.#buckets.get(key);
    if (!bucket) return { ok: true };
    const tokens = this.#refilled(bucket, this.#clock());
    return tokens < 1 ? this.#refusal(tokens) : { ok: true };
  }

  #refilled(bucket: Bucket, now: number): number {
    return Math.min(this.#capacity, bucket.tokens + (now - bucket.updatedAt) * this.#refillPerMs);
  }

  #refusal(tokens: number): Admission {
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / this.#refillPerMs / 1000)) };
  }
}
