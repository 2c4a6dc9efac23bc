import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { changeEvents, rows } from "../helpers/db.js";
import { startTestServer, testClock, type TestServer } from "../helpers/server.js";
import { merchantToken } from "../helpers/tokens.js";

const DAY = 86_400_000;
const START = Date.UTC(2026, 10, 25, 12, 0, 0);

describe("scopes (V3) and expires_within (V5)", () => {
  let server: TestServer;

  beforeEach(async () => {
    const token = await merchantToken("merchant_a", "alice", undefined, { now: START / 1000, ttl: 400 * 86_400 });
    server = await startTestServer({ clock: testClock(START), env: { API_KEYS_MCP_TOKEN: token } });
  });
  afterEach(() => server.close());

  const create = (args: Record<string, unknown>) => server.call("create_api_key", { name: "scoped", ...args });

  it.each([
    ["a resource and an action", ["payments:read"]],
    ["a wildcard action", ["refunds:*"]],
    ["dots, dashes, underscores and digits", ["payment_links.v2:create-link", "x1:y2"]],
    ["fifty scopes", Array.from({ length: 50 }, (_, i) => `resource${i}:read`)],
    ["an empty list (unrestricted)", []],
  ])("accepts %s", async (_label, scopes) => {
    const result = await create({ scopes });
    expect(result.ok && result.data.key.scopes).toEqual([...scopes].sort());
  });

  it.each([
    ["fifty-one scopes", Array.from({ length: 51 }, (_, i) => `resource${i}:read`)],
    ["a space", ["payments: read"]],
    ["no action", ["payments"]],
    ["an empty action", ["payments:"]],
    ["a wildcard resource", ["*:read"]],
    ["a bare wildcard", ["*"]],
    ["upper case", ["Payments:Read"]],
    ["two colons", ["a:b:c"]],
    ["a leading digit", ["1payments:read"]],
    ["a 65-character resource", [`${"r".repeat(65)}:read`]],
    ["a non-string", [42]],
    ["a string instead of a list", "payments:read"],
    ["an empty string", [""]],
    ["a newline", ["payments:read\n"]],
  ])("refuses %s with a schema error and writes nothing", async (_label, scopes) => {
    const result = await create({ scopes });
    expect(result.ok ? "ok" : result.code).toBe("MCP error -32602");
    expect(rows(server.db!, "api_keys")).toEqual([]);
  });

  it("sorts and de-duplicates, defaults to unrestricted, and audits the scopes", async () => {
    const result = await create({ scopes: ["refunds:*", "payments:read", "refunds:*"] });
    expect(result.ok && result.data.key.scopes).toEqual(["payments:read", "refunds:*"]);
    const plain = await create({});
    expect(plain.ok && plain.data.key.scopes).toEqual([]);
    expect(JSON.parse(changeEvents(server.db!)[0]!.changes as string).scopes).toEqual({ from: null, to: ["payments:read", "refunds:*"] });
  });

  it("replaces scopes on update, records old and new, and returns them from get and verify", async () => {
    const created = await create({ scopes: ["payments:read"] });
    if (!created.ok) throw new Error(created.text);
    const id = created.data.key.key_id;
    const updated = await server.call("update_api_key", { key_id: id, scopes: ["payments:write", "payments:read"] });
    expect(updated.ok && updated.data.key.scopes).toEqual(["payments:read", "payments:write"]);
    const events = changeEvents(server.db!);
    expect(JSON.parse(events[1]!.changes as string)).toEqual({
      scopes: { from: ["payments:read"], to: ["payments:read", "payments:write"] },
    });

    const same = await server.call("update_api_key", { key_id: id, scopes: ["payments:read", "payments:write"] });
    expect(same.ok).toBe(true);
    expect(changeEvents(server.db!)).toHaveLength(2);

    const cleared = await server.call("update_api_key", { key_id: id, scopes: [] });
    expect(cleared.ok && cleared.data.key.scopes).toEqual([]);
    const checked = await server.call("verify_api_key", { api_key: created.data.api_key });
    expect(checked.ok && checked.data.key.scopes).toEqual([]);
  });

  it("lists keys that expire within a window, not the ones already expired or never expiring", async () => {
    const ids: Record<string, string> = {};
    for (const [name, expiration] of [
      ["never", "never"],
      ["in-30d", "30d"],
      ["in-90d", "90d"],
      ["in-3d", new Date(START + 3 * DAY).toISOString()],
      ["in-8d", new Date(START + 8 * DAY).toISOString()],
      ["in-1h", new Date(START + 3_600_000).toISOString()],
    ]) {
      const result = await create({ name, expiration });
      if (!result.ok) throw new Error(result.text);
      ids[name!] = result.data.key.key_id;
    }
    const names = async (args: Record<string, unknown>) => {
      const result = await server.call("list_api_keys", args);
      if (!result.ok) throw new Error(result.text);
      return result.data.keys.map((key: { name: string }) => key.name);
    };
    expect(await names({ expires_within: "7d" })).toEqual(["in-1h", "in-3d"]);
    expect(await names({ expires_within: "8d" })).toEqual(["in-1h", "in-8d", "in-3d"]);
    expect(await names({ expires_within: "60m" })).toEqual(["in-1h"]);
    server.clock.advance(2 * 3_600_000);
    // The one that expired an hour ago is no longer "expiring within".
    expect(await names({ expires_within: "7d" })).toEqual(["in-3d"]);
    await server.call("delete_api_key", { key_id: ids["in-3d"] });
    expect(await names({ expires_within: "7d" })).toEqual([]);

    for (const expires_within of ["7", "1w", "7 d", ""]) {
      const refused = await server.call("list_api_keys", { expires_within });
      expect(refused.ok ? "ok" : refused.code).toBe("MCP error -32602");
    }
  });
});
