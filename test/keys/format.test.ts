import { crc32 } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { API_KEY_PATTERN, BASE62_ALPHABET, checksum, displayPrefix, ENVIRONMENTS, generateApiKey, KEY_TYPES, parseApiKey } from "../../src/keys/format.js";
import { hashApiKey, issueApiKey, HASH_VERSION } from "../../src/keys/secret.js";
import { KEY_ID_PATTERN, newKeyId } from "../../src/keys/ids.js";

describe("key format (K1)", () => {
  it.each(KEY_TYPES.flatMap((type) => ENVIRONMENTS.map((environment) => [type, environment] as const)))(
    "generates %s %s keys of the published shape",
    (type, environment) => {
      const key = generateApiKey(type, environment);
      expect(key).toMatch(API_KEY_PATTERN);
      expect(key.startsWith(`${type === "secret" ? "sk" : "pk"}_${environment}_`)).toBe(true);
      expect(parseApiKey(key)).toEqual({ type, environment });
    },
  );

  it("computes the checksum as base62 CRC-32 with digits 0-9A-Za-z, most significant first", () => {
    // CRC-32/IEEE("123456789") = 0xCBF43926 = 3421780262 = 3·62^5 + 45·62^4 + 35·62^3 + 27·62^2 + 22·62 + 14.
    expect(checksum("123456789")).toBe("3jZRME");
    // CRC-32 of the empty string is 0: six zero digits, left-padded.
    expect(checksum("")).toBe("000000");
  });

  it("ends every key with the checksum of everything before it", () => {
    const key = generateApiKey("secret", "live");
    expect(key.slice(-6)).toBe(checksum(key.slice(0, -6)));
  });

  it("refuses a key whose checksum does not match", () => {
    const key = generateApiKey("secret", "test");
    const last = key.at(-1)!;
    const tampered = key.slice(0, -1) + (last === "A" ? "B" : "A");
    expect(parseApiKey(tampered)).toBeUndefined();
    // A changed random character is caught too.
    const flipped = key.slice(0, 10) + (key[10] === "a" ? "b" : "a") + key.slice(11);
    expect(parseApiKey(flipped)).toBeUndefined();
  });

  it.each([
    ["empty", ""],
    ["unknown type", "rk_test_" + "a".repeat(32)],
    ["unknown environment", "sk_prod_" + "a".repeat(32)],
    ["short body", "sk_test_" + "a".repeat(31)],
    ["long body", "sk_test_" + "a".repeat(33)],
    ["URL-safe but not base62", "sk_test_" + "a".repeat(31) + "-"],
    ["surrounding whitespace", " sk_test_" + "a".repeat(32)],
  ])("refuses a malformed key: %s", (_label, candidate) => {
    expect(parseApiKey(candidate)).toBeUndefined();
  });

  // The checksum is computed in JavaScript (the verification path); zlib's CRC-32 is the reference.
  it("computes the same CRC-32 as zlib for any ASCII text", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0, max: 127 }).map((code) => String.fromCharCode(code)), maxLength: 80 }), (text) => {
        let value = crc32(text);
        let digits = "";
        for (let i = 0; i < 6; i++, value = Math.floor(value / 62)) digits = BASE62_ALPHABET.charAt(value % 62) + digits;
        expect(checksum(text)).toBe(digits);
      }),
      { numRuns: 2000 },
    );
  });

  it("parses exactly the keys the published pattern and the checksum accept, and tells their kind", () => {
    const reference = (candidate: string) => {
      if (!API_KEY_PATTERN.test(candidate) || candidate.slice(-6) !== checksum(candidate.slice(0, -6))) return undefined;
      return { type: candidate.startsWith("sk") ? "secret" : "publishable", environment: candidate.slice(3, 7) === "test" ? "test" : "live" };
    };
    const head = fc.constantFrom("sk_test_", "sk_live_", "pk_test_", "pk_live_");
    const body = fc.string({ unit: fc.constantFrom(...BASE62_ALPHABET), minLength: 26, maxLength: 26 });
    const valid = fc.tuple(head, body).map(([h, b]) => h + b + checksum(h + b));
    // Valid keys with one character replaced: mostly a checksum failure, sometimes a wrong shape.
    const mutated = fc.tuple(valid, fc.nat(39), fc.integer({ min: 0, max: 127 })).map(([key, at, code]) => key.slice(0, at) + String.fromCharCode(code) + key.slice(at + 1));
    fc.assert(
      fc.property(fc.oneof(valid, mutated, fc.string({ maxLength: 45 })), (candidate) => {
        expect(parseApiKey(candidate)).toEqual(reference(candidate));
      }),
      { numRuns: 5000 },
    );
  });

  it("draws the random part from all 62 symbols", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 400; i++) for (const c of generateApiKey("secret", "test").slice(8, 34)) seen.add(c);
    expect(seen.size).toBe(62);
  });

  it("shows type, environment and the first 4 body characters as the prefix (K3)", () => {
    const key = generateApiKey("publishable", "live");
    expect(displayPrefix(key)).toBe(key.slice(0, 12));
    expect(displayPrefix(key)).toMatch(/^pk_live_[0-9A-Za-z]{4}$/);
  });
});

describe("stored form (K3) and ids (K4)", () => {
  it("hashes with SHA-256, lowercase hex", () => {
    expect(hashApiKey("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("issues a key with its hash, version and prefix", () => {
    const issued = issueApiKey("secret", "test");
    expect(issued.hash).toBe(hashApiKey(issued.plaintext));
    expect(issued.hashVersion).toBe(HASH_VERSION);
    expect(issued.prefix).toBe(displayPrefix(issued.plaintext));
  });

  it("makes key ids of key_ and 20 base62 characters", () => {
    const ids = new Set(Array.from({ length: 1000 }, newKeyId));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(KEY_ID_PATTERN);
    expect(KEY_ID_PATTERN.source).toBe("^key_[0-9A-Za-z]{20}$");
  });
});
