import type Database from "better-sqlite3";
import fc from "fast-check";
import { exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BASE62_ALPHABET, checksum } from "../../src/keys/format.js";
import { SCOPE_PATTERN } from "../../src/keys/scopes.js";
import { AUDIT_ACTIONS } from "../../src/audit/events.js";
import { createCursorCodec, newCursorKey } from "../../src/store/cursor.js";
import { recordFigures } from "../helpers/figures.js";
import { FUZZ_SEED, fuzzParameters, fuzzTimeout } from "../helpers/fuzz.js";
import { startTestServer, type CallOutcome, type TestServer } from "../helpers/server.js";
import { merchantToken, signToken } from "../helpers/tokens.js";
import { ODD_STRINGS } from "./odd-strings.js";

const RUNS_PER_TOOL = 400;
const KEY_SHAPED = /(?:sk|pk)_(?:test|live)_[0-9A-Za-z]{32}/g;
/**
 * Run in this order. A VALID verify_api_key counts a use in memory, and the repository writes
 * the pending uses before it next reads keys (get, list, and rotate, which reads the key it
 * replaces). Were verify to run before a tool that reads keys, a refused get or rotate would
 * write those uses and look, to the total_changes() check, like a refused call that changed
 * the store. So verify runs last, and the server's usage timer is set never to fire.
 */
const TOOLS = [
  "create_api_key",
  "list_api_keys",
  "get_api_key",
  "update_api_key",
  // Before delete, which revokes the fixture keys: a revoked key cannot be rotated.
  "rotate_api_key",
  "delete_api_key",
  "list_audit_events",
  "verify_api_key",
] as const;
type Tool = (typeof TOOLS)[number];

/** Keys and tokens the generated arguments point at, made before the fuzzing starts. */
interface Fixtures {
  ownKeyIds: string[];
  otherKeyIds: string[];
  /**
   * Own keys that can still be rotated: each successful rotation replaces the id it rotated
   * with its replacement's, so rotate keeps reaching its handler's success path.
   */
  rotatable: string[];
  /**
   * Plaintexts of the fixture keys: own active, own revoked, own expired (rotated away) and its
   * replacement, own known only to verify, and the other tenant's.
   */
  plaintexts: string[];
  /** Every plaintext a create or rotate result has handed over during the run, fixtures first. */
  issued: string[];
  tokens: string[];
  /** Plaintext keys and tokens, which a model might paste into any text field. */
  secrets: string[];
  keyCursor: string;
  auditCursor: string;
  /** A public JWK to encrypt to, and its private half as a model might wrongly send it. */
  recipient: Record<string, unknown>;
  privateRecipient: Record<string, unknown>;
}

// Values of every kind: right and wrong types, boundaries, odd text, and fast-check's anything().
const oddString = fc.constantFrom(...Object.values(ODD_STRINGS));
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => `x${String.fromCharCode(unit)}y`);
const anyText = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: "binary", maxLength: 80 }), oddString, loneSurrogate);
const wrongType = fc.oneof(fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, [], {}, ["x"]), fc.anything({ maxDepth: 3 }));

const isoDate = fc
  .date({ min: new Date("1969-01-01T00:00:00Z"), max: new Date("2200-01-01T00:00:00Z"), noInvalidDate: true })
  .chain((date) => fc.constantFrom(date.toISOString(), date.toISOString().replace("Z", "+05:30"), date.toISOString().slice(0, 19)));
const expiration = fc.oneof(
  fc.constantFrom("never", "30d", "90d", "1y", "7d", "0d", "", "NEVER", "2027-02-30T00:00:00Z", "2027-13-01T00:00:00Z", "+275760-09-13T00:00:00Z", "9999-12-31T23:59:59Z"),
  isoDate,
  anyText,
  wrongType,
);

const UNITS = ["s", "m", "h", "d"] as const;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** A duration as the tools write it (`90s`, `24h`), of at most `maxMs` when given. */
const duration = (maxMs = Infinity) =>
  fc
    .tuple(fc.integer({ min: 0, max: 999_999 }), fc.constantFrom(...UNITS))
    .map(([n, unit]) => (n * UNIT_MS[unit] <= maxMs ? `${n}${unit}` : `${Math.floor(maxMs / UNIT_MS[unit])}${unit}`));
const WEEK_MS = 7 * 86_400_000;
const validScope = fc.oneof(
  fc.constantFrom("payments:read", "refunds:*", "payment_links.v2:create", "customers:write"),
  fc.stringMatching(SCOPE_PATTERN),
);
const oddScopes = fc.oneof(
  fc.constantFrom(["Payments:read"], ["payments"], ["payments:read "], [":read"], ["a:"], ["a:**"], ["a:b", ""], ["*:*"]),
  fc.array(validScope, { minLength: 51, maxLength: 60 }),
  // At the limit, all the same: accepted, and stored once.
  fc.constant(Array.from({ length: 50 }, () => "payments:read")),
  fc.array(anyText, { maxLength: 3 }),
  anyText,
);
/** A well-formed key with a correct checksum that nobody was ever given. */
const unknownKey = fc
  .tuple(fc.constantFrom("sk_test_", "sk_live_", "pk_test_", "pk_live_"), fc.string({ unit: fc.constantFrom(...BASE62_ALPHABET), minLength: 26, maxLength: 26 }))
  .map(([head, body]) => head + body + checksum(head + body));

/** Fields of each tool, required ones first; every tool also takes `token`. */
const TOOL_FIELDS: Record<Tool, { required: string[]; optional: string[] }> = {
  create_api_key: { required: ["name"], optional: ["description", "type", "environment", "expiration", "scopes", "delivery", "idempotency_key"] },
  list_api_keys: { required: [], optional: ["limit", "cursor", "status", "environment", "type", "expires_within"] },
  get_api_key: { required: ["key_id"], optional: [] },
  update_api_key: { required: ["key_id"], optional: ["name", "description", "expiration", "scopes"] },
  rotate_api_key: { required: ["key_id", "grace_period"], optional: ["expiration", "scopes", "delivery", "idempotency_key"] },
  delete_api_key: { required: ["key_id"], optional: [] },
  list_audit_events: { required: [], optional: ["key_id", "action", "since", "limit", "cursor"] },
  verify_api_key: { required: ["api_key"], optional: [] },
};

/** Mostly a valid value, so calls get past the schema; often an odd one; now and then a wrong type. */
function field(valid: fc.Arbitrary<unknown>, odd: fc.Arbitrary<unknown> = anyText): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: odd, weight: 2 }, { arbitrary: wrongType, weight: 1 });
}

/** One of a list that grows during the run, read when the value is generated (just before its call). */
const oneOfLive = (list: string[]) => fc.nat().map((n) => list[n % list.length]!);

function argumentsFor(tool: Tool, fixtures: Fixtures) {
  const pasted = fc.tuple(fc.constantFrom(...fixtures.secrets), fc.constantFrom("", "old: ", "replaces ")).map(([secret, lead]) => lead + secret);
  const text = fc.oneof({ arbitrary: anyText, weight: 3 }, { arbitrary: pasted, weight: 1 });
  const future = fc.integer({ min: 60_000, max: 10 * 365 * 86_400_000 }).map((ms) => new Date(Date.now() + ms).toISOString());
  const anyKeyId = fc.constantFrom(...fixtures.ownKeyIds, ...fixtures.otherKeyIds);
  const oddKeyId = fc.oneof(fc.stringMatching(/^key_[0-9A-Za-z]{20}$/), anyText);
  // A key a model was handed, misremembered: one character changed (the checksum no longer
  // matches), cut short, padded with whitespace, or in the wrong case.
  const tampered = fc.tuple(oneOfLive(fixtures.issued), fc.nat(), fc.constantFrom(...BASE62_ALPHABET)).chain(([key, at, digit]) => {
    const i = 8 + (at % 32);
    return fc.constantFrom(key.slice(0, i) + digit + key.slice(i + 1), key.slice(0, -1), ` ${key}\n`, key.toUpperCase(), `${key}x`, key.replace("_test_", "_live_"));
  });
  const foreignCursors = createCursorCodec(newCursorKey());
  const cursorOf = (kind: "k" | "a", own: string, other: string) =>
    field(
      fc.constant(own),
      fc.oneof(
        fc.bigInt({ min: -1n, max: 10n ** 17n }).map((n) => Buffer.from(`${kind}1.${n}`).toString("base64url")),
        // Sealed the way this store seals cursors, but under another key: well-formed, refused.
        fc.nat().map((n) => foreignCursors.encode(kind, "merchant_fuzz", kind === "k" ? [n] : [n, n])),
        fc.constant(other),
        anyText,
      ),
    );
  const generators: Record<string, fc.Arbitrary<unknown>> = {
    name: field(fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }), text),
    description: field(fc.oneof(fc.string({ unit: "grapheme", maxLength: 80 }), fc.constant(null)), text),
    type: field(fc.constantFrom("secret", "publishable"), fc.constantFrom("restricted", "SECRET", "")),
    environment: field(fc.constantFrom("test", "live"), fc.constantFrom("prod", "TEST", "")),
    expiration: field(fc.oneof(fc.constantFrom("never", "30d", "90d", "1y"), future), expiration),
    scopes: field(fc.array(validScope, { maxLength: 6 }), oddScopes),
    key_id: field(
      tool === "rotate_api_key" ? fc.oneof({ arbitrary: oneOfLive(fixtures.rotatable), weight: 3 }, { arbitrary: anyKeyId, weight: 2 }) : anyKeyId,
      oddKeyId,
    ),
    grace_period: field(
      fc.oneof(fc.constantFrom("0", "90s", "30m", "1h", "24h", "7d", "168h", "604800s", "10080m", "0s"), duration(WEEK_MS)),
      fc.oneof(fc.constantFrom("8d", "169h", "604801s", "10081m", "999999d", "1000000d", "-1h", "1w", "", "1.5h", "7 d", "00", "7D"), duration(), anyText),
    ),
    limit: field(fc.integer({ min: 1, max: 100 }), fc.oneof(fc.integer({ min: -5, max: 150 }), fc.double())),
    cursor: tool === "list_audit_events" ? cursorOf("a", fixtures.auditCursor, fixtures.keyCursor) : cursorOf("k", fixtures.keyCursor, fixtures.auditCursor),
    status: field(fc.constantFrom("active", "expired", "revoked", "all"), fc.constantFrom("deleted", "ALL", "")),
    expires_within: field(
      fc.oneof(fc.constantFrom("7d", "24h", "30m", "90s", "1d", "0s"), duration()),
      fc.constantFrom("7", "1w", "-7d", "", "7D", "1000000d", " 7d", "1.5d", "P7D"),
    ),
    action: field(fc.constantFrom(...AUDIT_ACTIONS), fc.constantFrom("api_key.deleted", "API_KEY.CREATED", "api_key.*", "%", "", "created")),
    since: field(
      fc.oneof(isoDate.filter((date) => !/T\d\d:\d\d:\d\d$/.test(date)), fc.integer({ min: -86_400_000, max: 86_400_000 }).map((ms) => new Date(Date.now() + ms).toISOString())),
      expiration,
    ),
    api_key: field(
      fc.oneof({ arbitrary: fc.constantFrom(...fixtures.plaintexts), weight: 3 }, { arbitrary: oneOfLive(fixtures.issued), weight: 2 }),
      fc.oneof({ arbitrary: tampered, weight: 3 }, unknownKey, pasted, anyText, fc.constant("x".repeat(513))),
    ),
    token: fc.oneof(fc.constantFrom(...fixtures.tokens), text, wrongType),
    // No delivery directory on this server: "file" is refused like any bad delivery.
    delivery: field(
      fc.constantFrom("inline", { encrypt_to: fixtures.recipient }),
      fc.oneof(
        fc.constantFrom("file", "INLINE", "", { encrypt_to: fixtures.privateRecipient }, { encrypt_to: { kty: "oct", k: "c2VjcmV0" } }),
        fc.record({ kty: fc.constantFrom("EC", "OKP", "RSA", "oct"), crv: anyText, x: anyText, y: anyText, n: anyText, e: anyText }).map((jwk) => ({ encrypt_to: jwk })),
        fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(anyText, wrongType), { maxKeys: 3 }).map((jwk) => ({ encrypt_to: jwk })),
      ),
    ),
    // A few keys, so that repeats (answered as replays) and conflicts both happen.
    idempotency_key: field(fc.constantFrom("retry-a", "retry-b", "retry-c"), anyText),
  };
  const { required, optional } = TOOL_FIELDS[tool];
  // Required fields are present nine times in ten, optional ones half the time; a token
  // argument (any kind) one call in five; a field no tool knows one call in ten.
  const sometimes = <T>(arbitrary: fc.Arbitrary<T>, inTen: number) =>
    fc.oneof({ arbitrary, weight: inTen }, { arbitrary: fc.constant(undefined), weight: 10 - inTen });
  const present = (names: string[], inTen: number) =>
    fc.tuple(...names.map((name) => sometimes(generators[name]!, inTen))).map((values) =>
      Object.fromEntries(names.flatMap((name, i) => (values[i] === undefined ? [] : [[name, values[i]]]))),
    );
  return fc
    .tuple(
      present(required, 9),
      present(optional, 5),
      sometimes(generators.token!, 2),
      sometimes(fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(anyText, wrongType), { minKeys: 1, maxKeys: 2 }), 1),
    )
    .map(([r, o, token, extra]) => ({ ...extra, ...r, ...o, ...(token === undefined ? {} : { token }) }));
}

describe("property: random arguments to every tool", () => {
  let server: TestServer;
  let fixtures: Fixtures;
  let calls = 0;
  let refused = 0;
  /** Answers by code, for the figures: the fuzzer must reach past the schema, not only bounce off it. */
  const outcomes: Record<string, number> = {};
  const okByTool: Partial<Record<Tool, number>> = {};
  /** verify_api_key answers by code, and the VALID ones by key id, to check the counted uses. */
  const verifyCodes: Record<string, number> = {};
  const validUses = new Map<string, number>();

  beforeAll(async () => {
    server = await startTestServer({
      env: {
        API_KEYS_MCP_TOKEN: await merchantToken("merchant_fuzz", "user_fuzz"),
        API_KEYS_MCP_RATE_LIMIT_READ: "1000000",
        API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000",
        API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES: "1000000",
      },
      // Never during the run: see TOOLS.
      usageFlushMs: 3_600_000,
    });
    const otherToken = await merchantToken("merchant_other", "user_other");
    const make = async (args: Record<string, unknown>) => {
      const outcome = await server.call("create_api_key", args);
      if (!outcome.ok) throw new Error(outcome.text);
      return outcome.data as { key: { key_id: string }; api_key: string };
    };
    const own = await Promise.all([
      make({ name: "own 1" }),
      make({ name: "own 2", expiration: "30d", scopes: ["payments:read"] }),
      make({ name: "own revoked" }),
      make({ name: "own rotated away" }),
    ]);
    await server.call("delete_api_key", { key_id: own[2]!.key.key_id });
    const rotated = await server.call("rotate_api_key", { key_id: own[3]!.key.key_id, grace_period: "0" });
    if (!rotated.ok) throw new Error(rotated.text);
    // Known only to verify_api_key, so no other tool revokes or rotates it: a key that stays VALID.
    const verifyOnly = await make({ name: "own, verified only" });
    const other = await make({ name: "other tenant", token: otherToken });
    const page = await server.call("list_api_keys", { limit: 1 });
    const auditPage = await server.call("list_audit_events", { limit: 1 });
    const tokens = [
      otherToken,
      await merchantToken("merchant_fuzz", "user_read_only", "api_keys:read"),
      await merchantToken("merchant_fuzz", "user_expired", undefined, { now: Math.floor(Date.now() / 1000) - 7200, ttl: 60 }),
      await signToken({ sub: "user_nobody" }),
      "not.a.jwt",
    ];
    const plaintexts = [...own, rotated.data, verifyOnly, other].map((created) => created.api_key as string);
    const recipientPair = await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256", extractable: true });
    fixtures = {
      // Not the key rotated away: left alone, it stays the fixture that verifies as EXPIRED.
      ownKeyIds: [...own.slice(0, 3).map((created) => created.key.key_id), rotated.data.key.key_id],
      otherKeyIds: [other.key.key_id],
      rotatable: [own[0]!.key.key_id, own[1]!.key.key_id, rotated.data.key.key_id],
      plaintexts,
      issued: [...plaintexts],
      tokens,
      secrets: [...plaintexts, ...tokens.slice(0, 4)],
      keyCursor: page.ok ? (page.data.next_cursor as string) : "",
      auditCursor: auditPage.ok ? (auditPage.data.next_cursor as string) : "",
      recipient: (await exportJWK(recipientPair.publicKey)) as Record<string, unknown>,
      privateRecipient: (await exportJWK(recipientPair.privateKey)) as Record<string, unknown>,
    };
    expect(fixtures.keyCursor).not.toBe("");
    expect(fixtures.auditCursor).not.toBe("");
  });
  /**
   * What a call changed. total_changes() counts every row this connection — the server's own —
   * inserted, updated or deleted, even an update to identical values; a refused call may add
   * only its auth.denied audit rows (E4). Cheap at any table size, so long runs stay linear.
   */
  const changesSince = (before: { total: number; seq: number }) => {
    const now = mark();
    const denials = statement("SELECT COUNT(*) FROM audit_events WHERE seq > ? AND action = 'auth.denied'").get(before.seq) as number;
    return now.total - before.total - denials;
  };
  const mark = () => ({
    total: statement("SELECT total_changes()").get() as number,
    seq: (statement("SELECT COALESCE(MAX(seq), 0) FROM audit_events").get() as number) ?? 0,
  });
  /** Each query prepared once: several run around every one of the thousands of calls. */
  const prepared = new Map<string, Database.Statement>();
  const statement = (sql: string) => {
    let found = prepared.get(sql);
    if (found === undefined) prepared.set(sql, (found = server.db!.prepare(sql).pluck()));
    return found;
  };

  /** What every answer must satisfy, whatever the arguments. */
  function checkAnswer(tool: Tool, args: Record<string, unknown>, outcome: CallOutcome): void {
    const text = outcome.ok ? outcome.texts.join("\n") : outcome.text;
    if (!outcome.ok) {
      expect(outcome.code, `${tool} ${JSON.stringify(args)}`).not.toBe("ERR_INTERNAL");
      expect(outcome.text).toMatch(/^(ERR_[A-Z_]+|MCP error -32602): /);
      expect(outcome.text).not.toMatch(/SQLITE|SELECT |INSERT |\n\s+at |\/tmp\//);
    }
    // No secret other than the one a create or rotate result exists to hand over: any string
    // shaped like a key that is not that one is a leak, whether or not this test knows the key.
    const handedOver = outcome.ok && (tool === "create_api_key" || tool === "rotate_api_key") ? (outcome.data.api_key as string | undefined) : undefined;
    expect((text.match(KEY_SHAPED) ?? []).filter((found) => found !== handedOver)).toEqual([]);
    for (const token of fixtures.tokens.slice(0, 3)) expect(text.includes(token.split(".")[2]!)).toBe(false);
  }

  /** Keeps the live lists current: what was handed over, and which key a rotation replaced. */
  function follow(tool: Tool, args: Record<string, unknown>, outcome: CallOutcome): void {
    if (!outcome.ok) return;
    // Inline only: a JWE delivery or a replay hands over no plaintext.
    if ((tool === "create_api_key" || tool === "rotate_api_key") && typeof outcome.data.api_key === "string") fixtures.issued.push(outcome.data.api_key);
    if (tool === "rotate_api_key") {
      const at = fixtures.rotatable.indexOf(args.key_id as string);
      if (at >= 0) fixtures.rotatable[at] = outcome.data.key.key_id as string;
    }
    if (tool === "verify_api_key") {
      const code = outcome.data.code as string;
      verifyCodes[code] = (verifyCodes[code] ?? 0) + 1;
      expect(outcome.data.valid).toBe(code === "VALID");
      expect(outcome.data.key === undefined).toBe(code === "MALFORMED" || code === "NOT_FOUND");
      if (code === "VALID") validUses.set(outcome.data.key.key_id, (validUses.get(outcome.data.key.key_id) ?? 0) + 1);
    }
  }

  it.each(TOOLS)("%s: never ERR_INTERNAL, never a secret in the answer, and a refusal changes nothing", async (tool) => {
    await fc.assert(
      fc.asyncProperty(argumentsFor(tool, fixtures), async (args) => {
        const before = mark();
        const outcome = await server.call(tool, args);
        calls += 1;
        outcomes[outcome.ok ? "OK" : outcome.code] = (outcomes[outcome.ok ? "OK" : outcome.code] ?? 0) + 1;
        if (outcome.ok) okByTool[tool] = (okByTool[tool] ?? 0) + 1;
        checkAnswer(tool, args, outcome);
        follow(tool, args, outcome);
        if (!outcome.ok) {
          refused += 1;
          expect(changesSince(before), `refused ${tool} changed nothing`).toBe(0);
        }
        // A check, whatever its answer, writes nothing now: uses are counted in memory.
        if (tool === "verify_api_key") expect(changesSince(before), "verify_api_key wrote nothing").toBe(0);
      }),
      fuzzParameters(RUNS_PER_TOOL),
    );
  }, fuzzTimeout(20_000));

  it("counted exactly one use per VALID answer, and none for the other answers", async () => {
    expect(Object.keys(verifyCodes).sort()).toEqual(["EXPIRED", "MALFORMED", "NOT_FOUND", "REVOKED", "VALID"]);
    await server.flushUsage();
    const used = server.db!
      .prepare("SELECT k.key_id, u.usage_count FROM key_usage u JOIN api_keys k ON k.seq = u.key_seq WHERE u.usage_count > 0 ORDER BY k.key_id")
      .all();
    expect(used).toEqual([...validUses].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key_id, usage_count]) => ({ key_id, usage_count })));
  });

  afterAll(async () => {
    // Closed first, so that what the server logs while closing is checked too.
    await server?.close();
    expect(server.logs.filter((log) => log.level === "error")).toEqual([]);
    // Enough of the calls reach the handlers (answered OK, or refused by them) to mean something,
    // and every tool succeeds now and then.
    expect(outcomes.OK ?? 0).toBeGreaterThan(calls / 10);
    expect(calls - (outcomes["MCP error -32602"] ?? 0) - (outcomes.OK ?? 0)).toBeGreaterThan(calls / 20);
    for (const tool of TOOLS) expect(okByTool[tool] ?? 0, `${tool} succeeded`).toBeGreaterThan(calls / TOOLS.length / 40);
    recordFigures("fuzz-arguments", {
      calls,
      refused,
      accepted: calls - refused,
      internal_errors: 0,
      seed: FUZZ_SEED,
      ...outcomes,
      ...Object.fromEntries(Object.entries(okByTool).map(([tool, n]) => [`ok.${tool}`, n])),
      ...Object.fromEntries(Object.entries(verifyCodes).map(([code, n]) => [`verify.${code}`, n])),
    });
  });
});
