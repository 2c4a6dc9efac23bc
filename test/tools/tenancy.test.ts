import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { changeEvents, rows } from "../helpers/db.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { merchantToken } from "../helpers/tokens.js";

/** A well-formed id that exists nowhere. */
const MISSING_ID = "key_000000000000000000Zz";

describe("tenancy (A5): another tenant's key behaves exactly like a missing one", () => {
  let server: TestServer;
  let tokenA: string;
  let tokenB: string;
  let keyOfA: string;

  beforeEach(async () => {
    server = await startTestServer();
    tokenA = await merchantToken("merchant_a", "alice");
    tokenB = await merchantToken("merchant_b", "bob");
    const created = await server.call("create_api_key", { name: "a's key", token: tokenA });
    if (!created.ok) throw new Error(created.text);
    keyOfA = created.data.key.key_id;
  });
  afterEach(() => server.close());

  const probes: [string, (id: string) => Record<string, unknown>][] = [
    ["get_api_key", (key_id) => ({ key_id })],
    ["update_api_key", (key_id) => ({ key_id, name: "taken over", expiration: "30d" })],
    ["delete_api_key", (key_id) => ({ key_id })],
  ];

  it.each(probes)("%s on another tenant's key answers as for a missing key and leaves it untouched", async (tool, args) => {
    const before = rows(server.db!, "api_keys");
    const eventsBefore = changeEvents(server.db!);

    const foreign = await server.call(tool, { ...args(keyOfA), token: tokenB });
    const missing = await server.call(tool, { ...args(MISSING_ID), token: tokenB });
    expect(foreign.ok).toBe(false);
    expect(missing.ok).toBe(false);
    if (foreign.ok || missing.ok) return;
    expect(foreign.code).toBe("ERR_NOT_FOUND");
    // Same code, same message, apart from the id the caller supplied.
    expect(foreign.text.replace(keyOfA, "<id>")).toBe(missing.text.replace(MISSING_ID, "<id>"));

    expect(rows(server.db!, "api_keys")).toEqual(before);
    expect(changeEvents(server.db!)).toEqual(eventsBefore);
    const stillThere = await server.call("get_api_key", { key_id: keyOfA, token: tokenA });
    expect(stillThere.ok && stillThere.data.key).toMatchObject({ name: "a's key", status: "active", expires_at: null });
  });

  it("list_api_keys shows each tenant only its own keys, whatever the filters or cursor", async () => {
    for (let i = 0; i < 3; i++) await server.call("create_api_key", { name: `b${i}`, token: tokenB });
    const listB = await server.call("list_api_keys", { status: "all", limit: 100, token: tokenB });
    expect(listB.ok && listB.data.keys.map((key: { name: string }) => key.name)).toEqual(["b2", "b1", "b0"]);

    // A cursor is sealed for the tenant it was issued to: B's cursor, used by A, is refused.
    const pageB = await server.call("list_api_keys", { limit: 1, token: tokenB });
    const cursor = pageB.ok ? pageB.data.next_cursor : null;
    expect(cursor).toEqual(expect.any(String));
    const withForeignCursor = await server.call("list_api_keys", { cursor, token: tokenA, status: "all" });
    expect(withForeignCursor).toMatchObject({ ok: false, code: "ERR_VALIDATION" });
    const listA = await server.call("list_api_keys", { token: tokenA, status: "all" });
    expect(listA.ok && listA.data.keys.map((key: { key_id: string }) => key.key_id)).toEqual([keyOfA]);
  });

  it("create_api_key takes the tenant from the token only: a tenant argument is refused", async () => {
    const result = await server.call("create_api_key", { name: "sneaky", merchant_id: "merchant_a", token: tokenB });
    expect(result.ok ? "ok" : result.code).toBe("MCP error -32602");
    const created = await server.call("create_api_key", { name: "b's own", token: tokenB });
    expect(created.ok).toBe(true);
    const owners = rows(server.db!, "api_keys").map((row) => `${row.name}:${row.tenant_id}`);
    expect(owners).toEqual(["a's key:merchant_a", "b's own:merchant_b"]);
  });

  it("the same subject in two merchants sees two separate key sets", async () => {
    const aliceInB = await merchantToken("merchant_b", "alice");
    const list = await server.call("list_api_keys", { token: aliceInB });
    expect(list.ok && list.data.keys).toEqual([]);
    const inB = await server.call("create_api_key", { name: "alice in b", token: aliceInB });
    if (!inB.ok) throw new Error(inB.text);
    const listB = await server.call("list_api_keys", { token: aliceInB });
    expect(listB.ok && listB.data.keys.map((key: { key_id: string }) => key.key_id)).toEqual([inB.data.key.key_id]);
    const listA = await server.call("list_api_keys", { token: tokenA });
    expect(listA.ok && listA.data.keys.map((key: { key_id: string }) => key.key_id)).toEqual([keyOfA]);
  });
});
