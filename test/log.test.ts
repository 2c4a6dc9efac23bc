import { jwtVerify } from "jose";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { generateApiKey } from "../src/keys/format.js";
import { createLineBuffer, createLogger, MAX_FIELD_BYTES, MAX_LINE_BYTES } from "../src/log.js";
import { redact, shorten } from "../src/redact.js";
import { encryptedToken, HMAC_KEY, SPACED_HEADERS, tokenWithHeader } from "./helpers/secret-shapes.js";
import { merchantToken } from "./helpers/tokens.js";

const turn = () => new Promise((resolve) => setImmediate(resolve));
const bytes = (text: string) => Buffer.byteLength(text);

/** `\uXXXX` for one character, behind `backslashes` backslashes. */
const escaped = (char: string, backslashes = 1) => `${"\\".repeat(backslashes)}u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** Ways a secret is written: as is, or partly or wholly in JSON `\u` escapes. */
const ENCODINGS: [string, (secret: string) => string][] = [
  ["as is", (secret) => secret],
  ["with one character escaped", (secret) => secret.slice(0, 12) + escaped(secret.charAt(12)) + secret.slice(13)],
  ["with a character escaped twice over", (secret) => secret.slice(0, 20) + escaped(secret.charAt(20), 2) + secret.slice(21)],
  ["with its separators escaped", (secret) => secret.replace(/[._]/g, (char) => escaped(char))],
  ["escaped throughout", (secret) => [...secret].map((char) => escaped(char)).join("")],
];

/** Where a secret stands in a line: after a letter, a digit, `_`, an escape, inside JSON text. */
const PLACES: [string, (secret: string) => string][] = [
  ["alone", (secret) => secret],
  ["after a space", (secret) => `token ${secret} end`],
  ["after a letter", (secret) => `Bearer${secret}`],
  ["after a digit", (secret) => `42${secret}`],
  ["after an underscore", (secret) => `extra_${secret}`],
  ["after a hyphen", (secret) => `x-${secret}`],
  ["after \\n", (secret) => `first line\\n${secret}`],
  ["after \\t", (secret) => `\\t${secret}`],
  ["after \\u0022", (secret) => `\\u0022${secret}\\u0022`],
  ["after \\\"", (secret) => `{\\"key\\":\\"${secret}\\"}`],
  ["inside JSON encoded twice", (secret) => JSON.stringify(JSON.stringify({ message: `Unrecognized key: "x\n${secret}"` }))],
];

describe("redaction", () => {
  const secrets: [label: string, secret: string, marker: string][] = [];

  beforeAll(async () => {
    const secretKey = generateApiKey("secret", "live");
    const publishableKey = generateApiKey("publishable", "test");
    secrets.push(["a secret live key", secretKey, "sk_live_[REDACTED]"], ["a publishable test key", publishableKey, "pk_test_[REDACTED]"]);
    secrets.push(["a JWT as jose writes it", await merchantToken("merchant_log", "user_log"), "[REDACTED_JWT]"]);
    // Headers any JSON encoder may write: each is a token jose accepts.
    for (const [label, header] of SPACED_HEADERS) {
      const token = tokenWithHeader(header);
      await jwtVerify(token, HMAC_KEY);
      secrets.push([`a JWT with ${label}`, token, "[REDACTED_JWT]"]);
    }
    const jwe = await encryptedToken();
    expect(jwe.split(".")).toHaveLength(5);
    secrets.push(["a JWE (five segments)", jwe, "[REDACTED_JWT]"]);
  });

  it("finds every key and JWT shape wherever it stands and however it is escaped", () => {
    let checked = 0;
    for (const [label, secret, marker] of secrets) {
      for (const [place, put] of PLACES) {
        for (const [encoding, encode] of ENCODINGS) {
          expect(redact(put(encode(secret))), `${label}, ${place}, ${encoding}`).toBe(put(marker));
          checked += 1;
        }
      }
    }
    expect(checked).toBe(7 * PLACES.length * ENCODINGS.length);
  });

  it("keeps display prefixes and ordinary text, and changes nothing it already redacted", () => {
    const ordinary = [
      "sk_test_Ab3x",
      "pk_live_0000 and sk_live_abcd_efgh",
      '{"time":"2026-11-25T00:00:00.000Z","level":"info","msg":"tool_call","duration_ms":0.42,"key_id":"key_V1StGXR8Z5jdHi6B"}',
      "dist/src/index.js 1.2.3 api.example.com 127.0.0.1 eyes.of.the they.were.here hey.you.there",
      "a header alone: eyJhbGciOiJIUzI1NiJ9 and a dotless run eyJhbGciOiJIUzI1NiJ9eyJzdWIiOiJ4In0",
      "escapes that decode to nothing secret: \\u0000 \\uD83D\\uDE00 \\\\ \\n",
      "é ü 日本 😀",
    ];
    for (const text of ordinary) expect(redact(text)).toBe(text);
    const once = redact(`sk_live_${"a".repeat(32)} eyJhbGciOiJIUzI1NiJ9.e30.c2ln`);
    expect(once).toBe("sk_live_[REDACTED] [REDACTED_JWT]");
    expect(redact(once)).toBe(once);
  });

  // Shapes that make a backtracking pattern quadratic (the first is the one that held the server
  // 25 s for 90 KB), or that make a scanner re-read: long runs with and without dots, headers
  // whose whitespace runs on, key prefixes without bodies, backslashes, escapes.
  const ADVERSARIAL: [string, (size: number) => string][] = [
    ["a JWT header repeated, no dot", (size) => "eyJ".repeat(size / 3)],
    ["a long segment, then a dot", (size) => `${"A".repeat(size)}.`],
    ["a header, then a long run without a second dot", (size) => `eyJhbGciOiJIUzI1NiJ9.${"A".repeat(size)}`],
    ["a header and a dot, repeated", (size) => "eyJ.".repeat(size / 4)],
    ["whitespace in base64url, then a dot", (size) => `${"ICAg".repeat(size / 4)}.x.y`],
    ["whitespace after a brace, never a quote", (size) => `ey${"ICAg".repeat(size / 4)}.x.y`],
    ["key prefixes without bodies", (size) => "sk_live_".repeat(size / 8)],
    ["key prefixes with display-prefix bodies", (size) => "sk_live_abcd_".repeat(size / 13)],
    ["dots", (size) => "a.".repeat(size / 2)],
    ["backslashes", (size) => "\\".repeat(size)],
    ["backslashes before a u", (size) => `${"\\".repeat(size)}u`],
    ["escaped letters", (size) => "\\u0065\\u0079\\u004a".repeat(size / 18)],
    ["escaped dots", (size) => "e\\u002e".repeat(size / 7)],
    ["broken escapes", (size) => "\\u00g".repeat(size / 5)],
    ["non-ASCII", (size) => "é".repeat(size)],
  ];

  // Linear time, checked robustly: the time per character stays under a generous bound at every
  // size from 64 KiB to 1 MiB (about 30 times what it takes on a busy machine). A quadratic scan's
  // time per character grows with its input and passes the bound early: the old pattern took
  // ~2 s on the first 64 KiB input, and would take an hour on the last.
  it("takes time linear in its input on adversarial text, up to the 1 MiB line limit", () => {
    const MS_PER_MIB = 2000;
    for (const [label, make] of ADVERSARIAL) {
      for (const size of [64 * 1024, 256 * 1024, 1024 * 1024]) {
        const text = make(size);
        let fastest = Infinity;
        // The faster of two runs: a busy machine slows some runs, never speeds one up.
        for (let run = 0; run < 2; run++) {
          const started = performance.now();
          redact(text);
          fastest = Math.min(fastest, performance.now() - started);
        }
        expect(fastest, `${label}, ${size / 1024} KiB`).toBeLessThan((MS_PER_MIB * text.length) / (1024 * 1024));
      }
    }
  });

  it("shortens to a byte budget after redacting, cutting between runs, so no part of a secret survives", () => {
    const [, key] = secrets[0]!;
    const [, jwt] = secrets[3]!;
    const text = `start ${"é".repeat(10)} ${key} middle ${jwt} ${"😀".repeat(5)} x${key}y end`;
    const whole = redact(text);
    expect(shorten(text, bytes(whole))).toBe(whole);
    for (let max = 40; max < bytes(whole); max++) {
      const short = shorten(text, max);
      expect(bytes(short), `at most ${max} bytes`).toBeLessThanOrEqual(max);
      const cut = /\.\.\.\[(\d+) bytes cut\]$/.exec(short);
      expect(cut, `cut to ${max}: says so`).not.toBeNull();
      const head = short.slice(0, cut!.index);
      // What is kept is the redacted text's start: a secret is replaced whole or left out whole.
      expect(whole.startsWith(head), `cut to ${max}: a prefix of the redacted text`).toBe(true);
      expect(head.endsWith("\uD83D"), `cut to ${max}: not inside a surrogate pair`).toBe(false);
      // The count is the bytes of the original after the part kept.
      const kept = text.length - [...Array(text.length + 1).keys()].find((n) => bytes(text.slice(text.length - n)) === Number(cut![1]))!;
      expect(redact(text.slice(0, kept)), `cut to ${max}: bytes cut`).toBe(head);
    }
    // Read no further than the budget: a megabyte-long run after the start is never scanned.
    expect(shorten(`head ${"eyJ".repeat(400_000)}`, 64)).toBe("head ...[1200000 bytes cut]");
  });
});

describe("logging (L1)", () => {
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

  it("redacts the finished line: secrets in fields, nested errors and causes", () => {
    const key = generateApiKey("secret", "test");
    const lines: string[] = [];
    const logger = createLogger({ level: "info", write: (line) => lines.push(line) });
    logger.error("tool_failed", { note: `extra_${key}`, error: new Error(`wrapped\n${key}`, { cause: new Error(`Unrecognized key: "x${key}"`) }) });
    expect(lines[0]).not.toContain(key.slice(8, 13));
    expect(JSON.parse(lines[0]!).note).toBe("extra_sk_test_[REDACTED]");
  });

  it("cuts a long string field to its cap, after redaction, and says how many bytes it cut", () => {
    const key = generateApiKey("secret", "live");
    const lines: string[] = [];
    const logger = createLogger({ level: "info", write: (line) => lines.push(line) });
    // A key right where the cut falls, and a megabyte behind it.
    const message = `${"x ".repeat(MAX_FIELD_BYTES / 2 - 40)}${key} ${"y".repeat(1024 * 1024)}`;
    logger.warn("protocol_error", { message, error: new Error(message) });
    const line = lines[0]!;
    expect(line).not.toContain(key.slice(0, 13));
    const record = JSON.parse(line);
    for (const text of [record.message, record.error.message]) {
      expect(bytes(text)).toBeLessThanOrEqual(MAX_FIELD_BYTES);
      expect(text).toMatch(/\.\.\.\[\d+ bytes cut\]$/);
    }
    expect(bytes(line)).toBeLessThan(3 * MAX_FIELD_BYTES + 8192);
  });

  it("caps a line at its limit, keeping it one valid JSON line with the head of what it said", () => {
    const lines: string[] = [];
    const logger = createLogger({ level: "info", write: (line) => lines.push(line), clock: () => 0 });
    const fields = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`field_${i}`, `${i} ${"z".repeat(MAX_FIELD_BYTES - 100)}`]));
    logger.info("wide", { ...fields, nested: { list: Array.from({ length: 200 }, () => "é".repeat(600)) } });
    const line = lines[0]!;
    expect(bytes(line)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    const record = JSON.parse(line);
    expect(record).toMatchObject({ time: "1970-01-01T00:00:00.000Z", level: "info", msg: "wide", truncated: true });
    expect(record.head).toMatch(/^\{"time":"1970-01-01T00:00:00.000Z","level":"info","msg":"wide","field_0":"0 z+/);
    expect(record.head).toMatch(/\.\.\.\[\d+ bytes cut\]$/);
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
