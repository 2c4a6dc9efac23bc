import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startHttpTestServer, type HttpTestServer } from "../helpers/http.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { testClock } from "../helpers/server.js";
import { merchantToken } from "../helpers/tokens.js";

describe("two HTTP instances on one PostgreSQL database", () => {
  let first: HttpTestServer;
  let second: HttpTestServer;
  let alice: string;
  let bob: string;

  beforeEach(async () => {
    const url = await createTestDatabase();
    const env = { API_KEYS_MCP_DATABASE_URL: url, API_KEYS_MCP_RATE_LIMIT_WRITE: "10000", API_KEYS_MCP_RATE_LIMIT_READ: "10000" };
    // One clock for both, as two hosts kept in time would have.
    const clock = testClock();
    [first, second] = await Promise.all([startHttpTestServer({ env, clock }), startHttpTestServer({ env, clock })]);
    alice = await merchantToken("merchant_shared", "alice");
    bob = await merchantToken("merchant_shared", "bob");
  });
  afterEach(async () => {
    await first.close();
    await second.close();
  });

  it("are one key store to a client that alternates between them", async () => {
    const instances = [first, second];
    const on = (i: number) => instances[i % 2]!;
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const created = await on(i).call(i % 3 === 0 ? bob : alice, "create_api_key", { name: `key ${i}` });
      if (!created.ok) throw new Error(created.text);
      ids.push(created.data.key.key_id);
      // The other instance sees it at once.
      const seen = await on(i + 1).call(alice, "get_api_key", { key_id: created.data.key.key_id });
      expect(seen.ok && seen.data.key).toMatchObject({ key_id: created.data.key.key_id, name: `key ${i}`, status: "active" });
    }

    // A change on one is the state on the other; a rotation's links too.
    expect((await first.call(alice, "update_api_key", { key_id: ids[0], name: "renamed on the first" })).ok).toBe(true);
    const rotated = await second.call(bob, "rotate_api_key", { key_id: ids[0], grace_period: "0" });
    if (!rotated.ok) throw new Error(rotated.text);
    const old = await first.call(alice, "get_api_key", { key_id: ids[0] });
    expect(old.ok && old.data.key).toMatchObject({ name: "renamed on the first", status: "expired", rotated_to: rotated.data.key.key_id });
    expect((await first.call(alice, "delete_api_key", { key_id: ids[1] })).ok).toBe(true);
    const verified = await second.call(alice, "verify_api_key", { api_key: rotated.data.api_key });
    expect(verified.ok && verified.data).toMatchObject({ valid: true, code: "VALID" });

    // Both list the same keys in the same order, page by page, each page from the other instance.
    const pages: string[][] = [];
    let cursor: string | undefined;
    let turn = 0;
    do {
      const page = await on(turn++).call(alice, "list_api_keys", { status: "all", limit: 3, ...(cursor ? { cursor } : {}) });
      if (!page.ok) throw new Error(page.text);
      pages.push(page.data.keys.map((key: { key_id: string }) => key.key_id));
      cursor = page.data.next_cursor ?? undefined;
    } while (cursor);
    expect(pages.flat()).toEqual([rotated.data.key.key_id, ...[...ids].reverse()]);

    // One audit trail, the same from either, every change from both instances in it.
    const trails = await Promise.all(instances.map((instance) => instance.call(alice, "list_audit_events", { limit: 100 })));
    const actions = trails.map((trail) => (trail.ok ? trail.data.events.map((event: { event_id: string }) => event.event_id) : trail.text));
    expect(actions[0]).toEqual(actions[1]);
    expect(actions[0]).toHaveLength(13);
  });
});
