import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { API_KEY_PATTERN, generateApiKey } from "../../src/keys/format.js";
import { hashApiKey } from "../../src/keys/secret.js";
import { STORE_NOW_NOTICE } from "../../tools/delivery.js";
import { changeEvents, dumpDatabase, rows } from "../helpers/db.js";
import { startTestServer, testClock, type TestServer } from "../helpers/server.js";
import { merchantToken } from "../helpers/tokens.js";

const DAY = 86_400_000;
const START = Date.UTC(2026, 10, 25, 12, 0, 0);
/** The shape of a compact JWS; the signature is not real. */
const SAMPLE_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLW5vdC1yZWFs";

describe("key lifecycle through the MCP tools (T1–T5)", () => {
  let server: TestServer;
  beforeEach(async () => {
    const clock = testClock(START);
    // Long-lived, so moving the clock by months tests key expiry, not token expiry.
    const token = await merchantToken("merchant_a", "alice", undefined, { now: START / 1000, ttl: 400 * 86_400 });
    server = await startTestServer({ clock, env: { API_KEYS_MCP_TOKEN: token } });
  });
  afterEach(() => server.close());

  const create = (args: Record<string, unknown> = {}) => server.call("create_api_key", { name: "checkout", ...args });

  describe("create_api_key", () => {
    it("returns the view and the plaintext once, with a store-it-now notice and the same JSON as text", async () => {
      const result = await create();
      expect(result.ok).toBe(true);
      if (!result.ok) return;
      const { key, api_key } = result.data;
      expect(api_key).toMatch(API_KEY_PATTERN);
      expect(api_key.startsWith("sk_test_")).toBe(true);
      expect(key).toEqual({
        key_id: expect.stringMatching(/^key_[0-9A-Za-z]{20}$/),
        name: "checkout",
        description: null,
        type: "secret",
        environment: "test",
        prefix: api_key.slice(0, 12),
        status: "active",
        created_at: new Date(START).toISOString(),
        updated_at: new Date(START).toISOString(),
        expires_at: null,
        revoked_at: null,
        last_used_at: null,
        usage_count: 0,
        created_by: "alice",
        scopes: [],
        rotated_from: null,
        rotated_to: null,
      });
      expect(result.texts).toEqual([STORE_NOW_NOTICE, JSON.stringify(result.data)]);
    });

    it("stores only the SHA-256 of the key, never the plaintext, and audits the creation", async () => {
      const result = await create({ description: "for the checkout service", type: "publishable", environment: "live" });
      if (!result.ok) throw new Error(result.text);
      const db = server.db!;
      const [row] = rows(db, "api_keys");
      expect(row).toMatchObject({ key_hash: hashApiKey(result.data.api_key), hash_version: 1, tenant_id: "merchant_a", type: "publishable" });
      expect(dumpDatabase(db)).not.toContain(result.data.api_key);
      expect(dumpDatabase(db)).not.toContain(result.data.api_key.slice(12));

      const events = changeEvents(db);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ action: "api_key.created", outcome: "success", tenant_id: "merchant_a", actor: "alice", key_id: result.data.key.key_id });
      expect(JSON.parse(events[0]!.changes as string)).toEqual({
        name: { from: null, to: "checkout" },
        description: { from: null, to: "for the checkout service" },
        type: { from: null, to: "publishable" },
        environment: { from: null, to: "live" },
        prefix: { from: null, to: result.data.key.prefix },
        expires_at: { from: null, to: null },
        scopes: { from: null, to: [] },
        delivery: { from: null, to: "inline" },
      });
    });

    it("never shows the plaintext again: get and list carry only the prefix", async () => {
      const created = await create();
      if (!created.ok) throw new Error(created.text);
      const got = await server.call("get_api_key", { key_id: created.data.key.key_id });
      const listed = await server.call("list_api_keys");
      for (const outcome of [got, listed]) {
        expect(outcome.ok).toBe(true);
        if (outcome.ok) expect(outcome.texts.join("")).not.toContain(created.data.api_key);
      }
    });

    it.each([
      ["30d", START + 30 * DAY],
      ["90d", START + 90 * DAY],
      ["1y", START + 365 * DAY],
      ["2027-03-01T10:00:00+02:00", Date.UTC(2027, 2, 1, 8, 0, 0)],
    ])("sets expiration %s as a UTC instant", async (expiration, expected) => {
      const result = await create({ expiration });
      expect(result.ok && result.data.key.expires_at).toBe(new Date(expected).toISOString());
    });

    it.each([
      ["a date-time in the past", { expiration: "2020-01-01T00:00:00Z" }, "ERR_VALIDATION"],
      ["the current instant", { expiration: new Date(START).toISOString() }, "ERR_VALIDATION"],
      ["a date-time without offset", { expiration: "2027-01-01T00:00:00" }, "MCP error -32602"],
      ["an unknown relative expiration", { expiration: "7d" }, "MCP error -32602"],
      ["an empty name", { name: "" }, "MCP error -32602"],
      ["a blank name", { name: "   " }, "MCP error -32602"],
      ["a 65-character name", { name: "n".repeat(65) }, "MCP error -32602"],
      ["a name with a control character", { name: "bad\u0007name" }, "MCP error -32602"],
      ["a name with an unpaired high surrogate", { name: "bad\uD800name" }, "MCP error -32602"],
      ["a name with an unpaired low surrogate", { name: "\uDC00" }, "MCP error -32602"],
      ["a name with surrogates in the wrong order", { name: "\uDC00\uD800" }, "MCP error -32602"],
      ["a description with an unpaired surrogate", { description: "note \uDBFF" }, "MCP error -32602"],
      ["a name with a right-to-left override", { name: "invoice\u202Egpj.exe" }, "MCP error -32602"],
      ["a name with a bidirectional isolate", { name: "\u2067key\u2069" }, "MCP error -32602"],
      ["a description with a left-to-right embedding", { description: "note \u202Ahidden\u202C" }, "MCP error -32602"],
      ["a 257-character description", { description: "d".repeat(257) }, "MCP error -32602"],
      ["an unknown type", { type: "restricted" }, "MCP error -32602"],
      ["an unknown environment", { environment: "prod" }, "MCP error -32602"],
      ["an unknown field", { tenant_id: "merchant_b" }, "MCP error -32602"],
      ["a name that is an API key", { name: generateApiKey("secret", "live") }, "ERR_VALIDATION"],
      ["a description quoting an API key", { description: `replaces ${generateApiKey("publishable", "test")} from the old app` }, "ERR_VALIDATION"],
      ["a description quoting a JWT", { description: `token: ${SAMPLE_JWT}` }, "ERR_VALIDATION"],
    ])("refuses %s and writes nothing", async (_label, args, code) => {
      const result = await create(args);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.code).toBe(code);
      expect(rows(server.db!, "api_keys")).toEqual([]);
      expect(changeEvents(server.db!)).toEqual([]);
    });

    // SQLite stores an unpaired surrogate as invalid UTF-8, which reads back as U+FFFD: the name
    // acknowledged would not be the name stored. Paired surrogates (emoji, 4-byte characters) are text.
    it("stores a name and description of 4-byte characters exactly as acknowledged", async () => {
      const name = "🔑 𝒜𠜎 ".padEnd(64, "🔑");
      const result = await create({ name, description: "emoji 🔑 and 𝟘" });
      expect(result.ok && result.data.key.name).toBe(name);
      const read = await server.call("get_api_key", { key_id: result.ok ? result.data.key.key_id : "" });
      expect(read.ok && [read.data.key.name, read.data.key.description]).toEqual([name, "emoji 🔑 and 𝟘"]);
    });

    // Right-to-left text needs no override: the bidirectional algorithm and the marks (LRM, RLM) do.
    it("stores right-to-left text and bidirectional marks as acknowledged", async () => {
      const name = "מפתח תשלומים \u200Fprod\u200E";
      const result = await create({ name, description: "مفتاح الدفع للإنتاج" });
      expect(result.ok && [result.data.key.name, result.data.key.description]).toEqual([name, "مفتاح الدفع للإنتاج"]);
    });

    // A secret in a name or description would be stored in plain text (key row and audit log)
    // and shown in every listing; the refusal names the field but never echoes the value.
    it("refuses a secret in free text without echoing it, and accepts a display prefix", async () => {
      const secret = generateApiKey("secret", "test");
      const refused = await create({ name: "ok", description: `key ${secret}` });
      expect(refused.ok ? "" : refused.text).toMatch(/^ERR_VALIDATION: description contains what looks like an API key or a token/);
      expect(refused.ok ? "" : refused.text).not.toContain(secret.slice(12));
      const created = await create({ name: "sk_test_Ab3x (checkout)" });
      expect(created.ok && created.data.key.name).toBe("sk_test_Ab3x (checkout)");
      const renamed = await server.call("update_api_key", { key_id: created.ok ? created.data.key.key_id : "", name: `old ${secret}` });
      expect(renamed.ok ? "OK" : renamed.code).toBe("ERR_VALIDATION");
      expect(dumpDatabase(server.db!)).not.toContain(secret.slice(12));
    });

    it("accepts a 64-character name with Unicode and a description with newlines", async () => {
      const name = "Zahlungen — Kasse ✓ ".padEnd(64, "x");
      const result = await create({ name, description: "line one\nline two\ttabbed" });
      expect(result.ok && result.data.key.name).toBe(name);
    });
  });

  describe("list_api_keys", () => {
    async function createMany(count: number, args: Record<string, unknown> = {}): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const result = await create({ name: `key ${i}`, ...args });
        if (!result.ok) throw new Error(result.text);
        ids.push(result.data.key.key_id);
      }
      return ids;
    }

    it("lists newest first in exact reverse creation order, even within one millisecond", async () => {
      const ids = await createMany(7); // the test clock does not move: all in the same millisecond
      const result = await server.call("list_api_keys");
      expect(result.ok && result.data.keys.map((key: { key_id: string }) => key.key_id)).toEqual(ids.reverse());
      expect(result.ok && result.data.next_cursor).toBeNull();
    });

    it("pages with a cursor, without gaps or repeats, and ends with a null cursor", async () => {
      const ids = (await createMany(23)).reverse();
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const result = await server.call("list_api_keys", { limit: 5, ...(cursor ? { cursor } : {}) });
        if (!result.ok) throw new Error(result.text);
        seen.push(...result.data.keys.map((key: { key_id: string }) => key.key_id));
        cursor = result.data.next_cursor ?? undefined;
        pages++;
      } while (cursor);
      expect(pages).toBe(5);
      expect(seen).toEqual(ids);
    });

    it("uses a default page size of 20 and accepts 1 to 100", async () => {
      await createMany(21);
      const page = await server.call("list_api_keys");
      expect(page.ok && page.data.keys).toHaveLength(20);
      expect(page.ok && page.data.next_cursor).toEqual(expect.any(String));
      for (const [limit, count] of [
        [1, 1],
        [100, 21],
      ]) {
        const accepted = await server.call("list_api_keys", { limit });
        expect(accepted.ok && accepted.data.keys, `limit ${limit}`).toHaveLength(count!);
      }
      for (const limit of [0, 101, 1.5]) {
        const refused = await server.call("list_api_keys", { limit });
        expect(refused.ok ? "ok" : refused.code).toBe("MCP error -32602");
      }
    });

    it("filters by status: default hides revoked, and expired follows the clock", async () => {
      const [expiring, revoked, active] = await createMany(3);
      await server.call("update_api_key", { key_id: expiring, expiration: "30d" });
      await server.call("delete_api_key", { key_id: revoked });
      server.clock.advance(30 * DAY);

      const ids = async (args: Record<string, unknown>) => {
        const result = await server.call("list_api_keys", args);
        if (!result.ok) throw new Error(result.text);
        return result.data.keys.map((key: { key_id: string; status: string }) => `${key.key_id}:${key.status}`);
      };
      expect(await ids({})).toEqual([`${active}:active`, `${expiring}:expired`]);
      expect(await ids({ status: "active" })).toEqual([`${active}:active`]);
      expect(await ids({ status: "expired" })).toEqual([`${expiring}:expired`]);
      expect(await ids({ status: "revoked" })).toEqual([`${revoked}:revoked`]);
      expect(await ids({ status: "all" })).toEqual([`${active}:active`, `${revoked}:revoked`, `${expiring}:expired`]);
    });

    it("filters by environment and type", async () => {
      const [testSecret] = await createMany(1);
      const [liveSecret] = await createMany(1, { environment: "live" });
      const [livePublishable] = await createMany(1, { environment: "live", type: "publishable" });
      const ids = async (args: Record<string, unknown>) => {
        const result = await server.call("list_api_keys", args);
        return result.ok ? result.data.keys.map((key: { key_id: string }) => key.key_id) : result.code;
      };
      expect(await ids({ environment: "live" })).toEqual([livePublishable, liveSecret]);
      expect(await ids({ environment: "test" })).toEqual([testSecret]);
      expect(await ids({ type: "publishable" })).toEqual([livePublishable]);
      expect(await ids({ type: "secret", environment: "live" })).toEqual([liveSecret]);
    });

    it.each([
      ["not base64 at all", "%%%"],
      ["base64 of something else", Buffer.from("k1.abc").toString("base64url")],
      ["a made-up cursor", "eyJhIjoxfQ"],
      ["in the clear, as cursors were before they were sealed", Buffer.from("k1.5").toString("base64url")],
      ["from list_audit_events", "audit"],
      ["another merchant's", "other merchant"],
    ])(
      "answers ERR_VALIDATION for a cursor that is %s",
      async (_label, given) => {
        await createMany(3);
        let cursor = given;
        if (given === "audit") {
          const events = await server.call("list_audit_events", { limit: 1 });
          cursor = events.ok ? events.data.next_cursor : "";
        } else if (given === "other merchant") {
          const other = await merchantToken("merchant_other", "olga", undefined, { now: START / 1000, ttl: 400 * 86_400 });
          await server.call("create_api_key", { name: "other 1", token: other });
          await server.call("create_api_key", { name: "other 2", token: other });
          const page = await server.call("list_api_keys", { limit: 1, token: other });
          cursor = page.ok ? page.data.next_cursor : "";
        }
        expect(cursor).toEqual(expect.any(String));
        const result = await server.call("list_api_keys", { cursor });
        expect(result.ok ? "ok" : result.code).toBe("ERR_VALIDATION");
      },
    );
  });

  describe("get_api_key", () => {
    it("returns the key and derives its status from the clock (K6)", async () => {
      const created = await create({ expiration: "30d" });
      if (!created.ok) throw new Error(created.text);
      const id = created.data.key.key_id;
      const before = await server.call("get_api_key", { key_id: id });
      expect(before.ok && before.data.key).toEqual(created.data.key);
      server.clock.advance(30 * DAY - 1);
      const lastMs = await server.call("get_api_key", { key_id: id });
      expect(lastMs.ok && lastMs.data.key.status).toBe("active");
      server.clock.advance(1);
      const after = await server.call("get_api_key", { key_id: id });
      expect(after.ok && after.data.key.status).toBe("expired");
    });

    it("answers ERR_NOT_FOUND for an unknown id and a schema error for a malformed one", async () => {
      const missing = await server.call("get_api_key", { key_id: "key_00000000000000000000" });
      expect(missing.ok ? "ok" : missing.code).toBe("ERR_NOT_FOUND");
      expect(missing.ok ? "" : missing.text).toContain("list_api_keys");
      const malformed = await server.call("get_api_key", { key_id: "sk_test_whatever" });
      expect(malformed.ok ? "ok" : malformed.code).toBe("MCP error -32602");
    });
  });

  describe("update_api_key", () => {
    it("changes name, description and expiration, bumps updated_at and audits old and new values", async () => {
      const created = await create({ description: "old" });
      if (!created.ok) throw new Error(created.text);
      const id = created.data.key.key_id;
      server.clock.advance(1000);
      const updated = await server.call("update_api_key", { key_id: id, name: "renamed", description: null, expiration: "90d" });
      if (!updated.ok) throw new Error(updated.text);
      expect(updated.data.key).toMatchObject({
        key_id: id,
        name: "renamed",
        description: null,
        expires_at: new Date(START + 1000 + 90 * DAY).toISOString(),
        updated_at: new Date(START + 1000).toISOString(),
        created_at: new Date(START).toISOString(),
        prefix: created.data.key.prefix,
      });
      const got = await server.call("get_api_key", { key_id: id });
      expect(got.ok && got.data.key).toEqual(updated.data.key);

      const events = changeEvents(server.db!);
      expect(events.map((event) => event.action)).toEqual(["api_key.created", "api_key.updated"]);
      expect(JSON.parse(events[1]!.changes as string)).toEqual({
        name: { from: "checkout", to: "renamed" },
        description: { from: "old", to: null },
        expires_at: { from: null, to: new Date(START + 1000 + 90 * DAY).toISOString() },
      });
    });

    it("is idempotent: the same change again writes no audit row and keeps updated_at", async () => {
      const created = await create();
      if (!created.ok) throw new Error(created.text);
      const id = created.data.key.key_id;
      const first = await server.call("update_api_key", { key_id: id, name: "same" });
      server.clock.advance(5000);
      const second = await server.call("update_api_key", { key_id: id, name: "same" });
      expect(second.ok && second.data.key).toEqual(first.ok && first.data.key);
      expect(changeEvents(server.db!)).toHaveLength(2);
    });

    it("can set a key back to never expiring", async () => {
      const created = await create({ expiration: "30d" });
      if (!created.ok) throw new Error(created.text);
      const updated = await server.call("update_api_key", { key_id: created.data.key.key_id, expiration: "never" });
      expect(updated.ok && updated.data.key.expires_at).toBeNull();
    });

    it.each([
      ["no field to change", {}, "ERR_VALIDATION"],
      ["an expiration in the past", { expiration: "2001-01-01T00:00:00Z" }, "ERR_VALIDATION"],
      ["an invalid name", { name: "" }, "MCP error -32602"],
    ])("refuses %s and changes nothing", async (_label, args, code) => {
      const created = await create();
      if (!created.ok) throw new Error(created.text);
      const before = rows(server.db!, "api_keys");
      const result = await server.call("update_api_key", { key_id: created.data.key.key_id, ...args });
      expect(result.ok ? "ok" : result.code).toBe(code);
      expect(rows(server.db!, "api_keys")).toEqual(before);
      expect(changeEvents(server.db!)).toHaveLength(1);
    });

    it("answers ERR_CONFLICT for a revoked key and leaves it as it was", async () => {
      const created = await create();
      if (!created.ok) throw new Error(created.text);
      const id = created.data.key.key_id;
      await server.call("delete_api_key", { key_id: id });
      const before = rows(server.db!, "api_keys");
      const result = await server.call("update_api_key", { key_id: id, name: "revived?" });
      expect(result.ok ? "ok" : result.code).toBe("ERR_CONFLICT");
      expect(rows(server.db!, "api_keys")).toEqual(before);
    });
  });

  describe("delete_api_key", () => {
    it("revokes softly: the row stays, the status is revoked, and a second call changes nothing", async () => {
      const created = await create();
      if (!created.ok) throw new Error(created.text);
      const id = created.data.key.key_id;
      server.clock.advance(2000);
      const revoked = await server.call("delete_api_key", { key_id: id });
      if (!revoked.ok) throw new Error(revoked.text);
      expect(revoked.data.key).toMatchObject({ key_id: id, status: "revoked", revoked_at: new Date(START + 2000).toISOString() });

      server.clock.advance(2000);
      const again = await server.call("delete_api_key", { key_id: id });
      expect(again.ok && again.data.key).toEqual(revoked.data.key);
      expect(changeEvents(server.db!).map((event) => event.action)).toEqual(["api_key.created", "api_key.revoked"]);
      expect(rows(server.db!, "api_keys")).toHaveLength(1);

      const listed = await server.call("list_api_keys");
      expect(listed.ok && listed.data.keys).toEqual([]);
      const got = await server.call("get_api_key", { key_id: id });
      expect(got.ok && got.data.key.status).toBe("revoked");
    });

    it("revokes an expired key too", async () => {
      const created = await create({ expiration: "30d" });
      if (!created.ok) throw new Error(created.text);
      server.clock.advance(31 * DAY);
      const revoked = await server.call("delete_api_key", { key_id: created.data.key.key_id });
      expect(revoked.ok && revoked.data.key.status).toBe("revoked");
    });

    it("answers ERR_NOT_FOUND for an unknown key and writes nothing", async () => {
      const result = await server.call("delete_api_key", { key_id: "key_zzzzzzzzzzzzzzzzzzzz" });
      expect(result.ok ? "ok" : result.code).toBe("ERR_NOT_FOUND");
      expect(changeEvents(server.db!)).toEqual([]);
    });
  });
});
