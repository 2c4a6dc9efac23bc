import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeCursor } from "../../src/store/cursor.js";
import { recordFigures } from "../helpers/figures.js";
import { FUZZ_SEED, fuzzParameters, fuzzTimeout } from "../helpers/fuzz.js";
import { startTestServer, type CallOutcome, type TestServer } from "../helpers/server.js";
import { merchantToken, signToken } from "../helpers/tokens.js";
import { ODD_STRINGS } from "./odd-strings.js";

const RUNS_PER_TOOL = 400;
const KEY_SHAPED = /(?:sk|pk)_(?:test|live)_[0-9A-Za-z]{32}/g;
const TOOLS = ["create_api_key", "list_api_keys", "get_api_key", "update_api_key", "delete_api_key"] as const;

/** Keys and tokens the generated arguments point at, made before the fuzzing starts. */
interface Fixtures {
  ownKeyIds: string[];
  otherKeyIds: string[];
  tokens: string[];
  /** Plaintext keys and tokens, which a model might paste into any text field. */
  secrets: string[];
  cursor: string;
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

/** Fields of each tool, required ones first; every tool also takes `token`. */
const TOOL_FIELDS: Record<(typeof TOOLS)[number], { required: string[]; optional: string[] }> = {
  create_api_key: { required: ["name"], optional: ["description", "type", "environment", "expiration"] },
  list_api_keys: { required: [], optional: ["limit", "cursor", "status", "environment", "type"] },
  get_api_key: { required: ["key_id"], optional: [] },
  update_api_key: { required: ["key_id"], optional: ["name", "description", "expiration"] },
  delete_api_key: { required: ["key_id"], optional: [] },
};

/** Mostly a valid value, so calls get past the schema; often an odd one; now and then a wrong type. */
function field(valid: fc.Arbitrary<unknown>, odd: fc.Arbitrary<unknown> = anyText): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: odd, weight: 2 }, { arbitrary: wrongType, weight: 1 });
}

function argumentsFor(tool: (typeof TOOLS)[number], fixtures: Fixtures) {
  const pasted = fc.tuple(fc.constantFrom(...fixtures.secrets), fc.constantFrom("", "old: ", "replaces ")).map(([secret, lead]) => lead + secret);
  const text = fc.oneof({ arbitrary: anyText, weight: 3 }, { arbitrary: pasted, weight: 1 });
  const future = fc.integer({ min: 60_000, max: 10 * 365 * 86_400_000 }).map((ms) => new Date(Date.now() + ms).toISOString());
  const generators: Record<string, fc.Arbitrary<unknown>> = {
    name: field(fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }), text),
    description: field(fc.oneof(fc.string({ unit: "grapheme", maxLength: 80 }), fc.constant(null)), text),
    type: field(fc.constantFrom("secret", "publishable"), fc.constantFrom("restricted", "SECRET", "")),
    environment: field(fc.constantFrom("test", "live"), fc.constantFrom("prod", "TEST", "")),
    expiration: field(fc.oneof(fc.constantFrom("never", "30d", "90d", "1y"), future), expiration),
    key_id: field(
      fc.constantFrom(...fixtures.ownKeyIds, ...fixtures.otherKeyIds),
      fc.oneof(fc.stringMatching(/^key_[0-9A-Za-z]{20}$/), anyText),
    ),
    limit: field(fc.integer({ min: 1, max: 100 }), fc.oneof(fc.integer({ min: -5, max: 150 }), fc.double())),
    cursor: field(
      fc.constant(fixtures.cursor),
      fc.oneof(fc.bigInt({ min: -1n, max: 10n ** 17n }).map((n) => Buffer.from(`k1.${n}`).toString("base64url")), fc.nat().map((n) => encodeCursor("k", n)), anyText),
    ),
    status: field(fc.constantFrom("active", "expired", "revoked", "all"), fc.constantFrom("deleted", "ALL", "")),
    token: fc.oneof(fc.constantFrom(...fixtures.tokens), text, wrongType),
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

  beforeAll(async () => {
    server = await startTestServer({
      env: {
        API_KEYS_MCP_TOKEN: await merchantToken("merchant_fuzz", "user_fuzz"),
        API_KEYS_MCP_RATE_LIMIT_READ: "1000000",
        API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000",
        API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES: "1000000",
      },
    });
    const otherToken = await merchantToken("merchant_other", "user_other");
    const make = async (args: Record<string, unknown>) => {
      const outcome = await server.call("create_api_key", args);
      if (!outcome.ok) throw new Error(outcome.text);
      return outcome.data as { key: { key_id: string }; api_key: string };
    };
    const own = await Promise.all([make({ name: "own 1" }), make({ name: "own 2", expiration: "30d" }), make({ name: "own revoked" })]);
    await server.call("delete_api_key", { key_id: own[2]!.key.key_id });
    const other = await make({ name: "other tenant", token: otherToken });
    const page = await server.call("list_api_keys", { limit: 1 });
    const tokens = [
      otherToken,
      await merchantToken("merchant_fuzz", "user_read_only", "api_keys:read"),
      await merchantToken("merchant_fuzz", "user_expired", undefined, { now: Math.floor(Date.now() / 1000) - 7200, ttl: 60 }),
      await signToken({ sub: "user_nobody" }),
      "not.a.jwt",
    ];
    fixtures = {
      ownKeyIds: own.map((created) => created.key.key_id),
      otherKeyIds: [other.key.key_id],
      tokens,
      secrets: [...[...own, other].map((created) => created.api_key), ...tokens.slice(0, 4)],
      cursor: page.ok ? (page.data.next_cursor as string) : "",
    };
  });
  afterAll(() => server?.close());

  /**
   * What a call changed. total_changes() counts every row this connection — the server's own —
   * inserted, updated or deleted, even an update to identical values; a refused call may add
   * only its auth.denied audit rows (E4). Cheap at any table size, so long runs stay linear.
   */
  const changesSince = (before: { total: number; seq: number }) => {
    const now = mark();
    const denials = server.db!.prepare("SELECT COUNT(*) FROM audit_events WHERE seq > ? AND action = 'auth.denied'").pluck().get(before.seq) as number;
    return now.total - before.total - denials;
  };
  const mark = () => ({
    total: server.db!.prepare("SELECT total_changes()").pluck().get() as number,
    seq: (server.db!.prepare("SELECT COALESCE(MAX(seq), 0) FROM audit_events").pluck().get() as number) ?? 0,
  });

  /** What every answer must satisfy, whatever the arguments. */
  function checkAnswer(tool: string, args: Record<string, unknown>, outcome: CallOutcome): void {
    const text = outcome.ok ? outcome.texts.join("\n") : outcome.text;
    if (!outcome.ok) {
      expect(outcome.code, `${tool} ${JSON.stringify(args)}`).not.toBe("ERR_INTERNAL");
      expect(outcome.text).toMatch(/^(ERR_[A-Z_]+|MCP error -32602): /);
      expect(outcome.text).not.toMatch(/SQLITE|SELECT |INSERT |\n\s+at |\/tmp\//);
    }
    // No secret other than the one a create result exists to hand over: any string shaped like a
    // key that is not that one is a leak, whether or not this test knows the key.
    const own = outcome.ok && tool === "create_api_key" ? (outcome.data.api_key as string) : undefined;
    expect((text.match(KEY_SHAPED) ?? []).filter((found) => found !== own)).toEqual([]);
    for (const token of fixtures.tokens.slice(0, 3)) expect(text.includes(token.split(".")[2]!)).toBe(false);
  }

  it.each(TOOLS)("%s: never ERR_INTERNAL, never a secret in the answer, and a refusal changes nothing", async (tool) => {
    await fc.assert(
      fc.asyncProperty(argumentsFor(tool, fixtures), async (args) => {
        const before = mark();
        const outcome = await server.call(tool, args);
        calls += 1;
        outcomes[outcome.ok ? "OK" : outcome.code] = (outcomes[outcome.ok ? "OK" : outcome.code] ?? 0) + 1;
        checkAnswer(tool, args, outcome);
        if (!outcome.ok) {
          refused += 1;
          expect(changesSince(before), `refused ${tool} changed nothing`).toBe(0);
        }
      }),
      fuzzParameters(RUNS_PER_TOOL),
    );
  }, fuzzTimeout(20_000));

  afterAll(() => {
    expect(server.logs.filter((log) => log.level === "error")).toEqual([]);
    // Enough of the calls reach the handlers (answered OK, or refused by them) to mean something.
    expect(outcomes.OK ?? 0).toBeGreaterThan(calls / 10);
    expect(calls - (outcomes["MCP error -32602"] ?? 0) - (outcomes.OK ?? 0)).toBeGreaterThan(calls / 20);
    recordFigures("fuzz-arguments", { calls, refused, accepted: calls - refused, internal_errors: 0, seed: FUZZ_SEED, ...outcomes });
  });
});
