import { afterEach, describe, expect, it, vi } from "vitest";
import { createLineBuffer, createLogger, redact } from "../src/log.js";

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("logging (L1)", () => {
  it("redacts anything shaped like a JWT or an API key, keeping display prefixes", () => {
    const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    const key = "sk_live_0123456789abcdefghijABCDEFGHIJxy";
    expect(redact(`token ${jwt} key ${key} prefix sk_test_Ab3x`)).toBe("token [REDACTED_JWT] key sk_live_[REDACTED] prefix sk_test_Ab3x");
  });

  it("writes one JSON line per entry, filtered by level, with errors as objects", () => {
    const lines: string[] = [];
    const logger = createLogger({ level: "info", write: (line) => lines.push(line), clock: () => Date.UTC(2026, 10, 25) });
    logger.debug("hidden");
    logger.info("tool_call", { tool: "get_api_key", outcome: "OK", tenant: undefined });
    logger.error("tool_failed", { error: Object.assign(new Error("boom"), { code: "SQLITE_BUSY" }) });
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0]!)).toEqual({ time: "2026-11-25T00:00:00.000Z", level: "info", msg: "tool_call", tool: "get_api_key", outcome: "OK" });
    expect(JSON.parse(lines[1]!).error).toMatchObject({ name: "Error", message: "boom", code: "SQLITE_BUSY" });
  });

  describe("the line buffer", () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it("holds lines for the delay, then writes them in one chunk, in order, deferred ones included", () => {
      vi.useFakeTimers();
      const chunks: string[] = [];
      const buffer = createLineBuffer((chunk) => chunks.push(chunk), { delayMs: 50 });
      const logger = createLogger({ level: "info", write: buffer.write, defer: buffer.defer, clock: () => 0 });
      logger.info("first");
      buffer.write("plain");
      logger.info("third");
      vi.advanceTimersByTime(49);
      expect(chunks).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(chunks).toHaveLength(1);
      expect(chunks[0]!.trimEnd().split("\n").map((line) => (line.startsWith("{") ? JSON.parse(line).msg : line))).toEqual(["first", "plain", "third"]);
      // The next line starts a new delay.
      logger.info("later");
      vi.advanceTimersByTime(49);
      expect(chunks).toHaveLength(1);
      vi.advanceTimersByTime(1);
      expect(chunks).toHaveLength(2);
    });

    it("writes at the end of the turn once enough lines wait, and everything on flush()", async () => {
      const chunks: string[] = [];
      const buffer = createLineBuffer((chunk) => chunks.push(chunk), { delayMs: 60_000, maxLines: 3 });
      buffer.write("one");
      buffer.write("two");
      await turn();
      expect(chunks).toEqual([]);
      buffer.write("three");
      expect(chunks).toEqual([]);
      await turn();
      expect(chunks).toEqual(["one\ntwo\nthree\n"]);

      buffer.write("at exit");
      buffer.flush();
      expect(chunks).toEqual(["one\ntwo\nthree\n", "at exit\n"]);
      buffer.flush();
      expect(chunks).toHaveLength(2);
    });
  });

  it("stamps a deferred line with the time it was logged, not the time it was written", async () => {
    let now = 1000;
    const lines: string[] = [];
    const buffer = createLineBuffer((chunk) => lines.push(chunk));
    const logger = createLogger({ level: "info", write: buffer.write, defer: buffer.defer, clock: () => now });
    logger.info("early");
    now = 5000;
    await turn();
    buffer.flush();
    expect(JSON.parse(lines[0]!).time).toBe("1970-01-01T00:00:01.000Z");
  });
});
