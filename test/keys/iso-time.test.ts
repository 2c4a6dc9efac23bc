import { describe, expect, it } from "vitest";
import { isoTime } from "../../src/keys/iso-time.js";

describe("isoTime", () => {
  it.each([
    0,
    1,
    999,
    86_399_999,
    86_400_000,
    951_782_400_000, // 2000-02-29, a leap day in a century leap year
    951_868_799_999, // 2000-02-29T23:59:59.999Z
    4_107_542_400_000, // 2100-03-01, after a non-leap century's February
    1_709_164_800_123,
    Date.UTC(2026, 10, 25, 12, 0, 0),
    Date.UTC(9999, 11, 31, 23, 59, 59, 999),
  ])("formats %d exactly as Date#toISOString", (ms) => {
    expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });

  it("agrees with Date#toISOString on 200,000 instants spread over years 1970–9999", () => {
    const end = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
    let seed = 0x9e3779b9;
    const mismatches: number[] = [];
    for (let i = 0; i < 200_000; i++) {
      // A deterministic xorshift walk, so a failure names an instant that reproduces.
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      const ms = Math.floor(((seed >>> 0) / 2 ** 32) * end) + (i % 1000);
      if (isoTime(ms) !== new Date(ms).toISOString()) mismatches.push(ms);
    }
    expect(mismatches).toEqual([]);
  });
});
