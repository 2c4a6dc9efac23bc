import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startTestServer, testClock, type TestClock, type TestServer } from "../helpers/server.js";
import { merchantToken } from "../helpers/tokens.js";

const DAY = 86_400_000;
const START = Date.UTC(2026, 10, 25, 12, 0, 16, 800);

/** A clock that moves one millisecond every time it is read: any second reading in a call shows. */
function tickingClock(start: number): TestClock {
  const base = testClock(start);
  const clock = (() => {
    const now = base();
    base.advance(1);
    return now;
  }) as TestClock;
  clock.advance = base.advance;
  clock.set = base.set;
  return clock;
}

describe("one call, one instant: every time a call writes and returns is the same reading of the clock", () => {
  let server: TestServer;
  let token: string;

  beforeEach(async () => {
    server = await startTestServer({ clock: tickingClock(START), env: { API_KEYS_MCP_RATE_LIMIT_WRITE: "10000" } });
    token = await merchantToken("merchant_a", "alice", undefined, { now: Math.floor(START / 1000), ttl: 400 * 86_400 });
  });
  afterEach(() => server.close());

  const call = (tool: string, args: Record<string, unknown>) => server.call(tool, { token, ...args });

  it("gives a 30-day key exactly 30 days from its creation, to the millisecond", async () => {
    const created = await call("create_api_key", { name: "thirty days", expiration: "30d" });
    if (!created.ok) throw new Error(created.text);
    const { key } = created.data;
    expect(Date.parse(key.expires_at) - Date.parse(key.created_at)).toBe(30 * DAY);
    expect(key.updated_at).toBe(key.created_at);
    const events = await call("list_audit_events", { key_id: key.key_id });
    expect(events.ok && events.data.events.map((event: { occurred_at: string }) => event.occurred_at)).toEqual([key.created_at]);
  });

  it("answers a rotation with grace 0 with the old key expired, as a get right after shows it", async () => {
    const created = await call("create_api_key", { name: "leaked" });
    if (!created.ok) throw new Error(created.text);
    const rotated = await call("rotate_api_key", { key_id: created.data.key.key_id, grace_period: "0" });
    if (!rotated.ok) throw new Error(rotated.text);
    const { previous, key } = rotated.data;
    expect(previous).toMatchObject({ status: "expired", rotated_to: key.key_id });
    expect(previous.expires_at).toBe(previous.updated_at);
    expect(key.created_at).toBe(previous.updated_at);
    const got = await call("get_api_key", { key_id: previous.key_id });
    expect(got.ok && got.data.key).toEqual({ ...previous });
  });

  it("shows the use a VALID verification just counted", async () => {
    const created = await call("create_api_key", { name: "used" });
    if (!created.ok) throw new Error(created.text);
    for (let n = 1; n <= 3; n++) {
      const verified = await call("verify_api_key", { api_key: created.data.api_key });
      if (!verified.ok) throw new Error(verified.text);
      expect(verified.data).toMatchObject({ valid: true, code: "VALID", key: { usage_count: n } });
      const got = await call("get_api_key", { key_id: created.data.key.key_id });
      expect(got.ok && got.data.key).toEqual(verified.data.key);
    }
  });

  it("refuses to move a rotated key's end later, with ERR_CONFLICT naming its replacement", async () => {
    const created = await call("create_api_key", { name: "rotated" });
    if (!created.ok) throw new Error(created.text);
    const rotated = await call("rotate_api_key", { key_id: created.data.key.key_id, grace_period: "0" });
    if (!rotated.ok) throw new Error(rotated.text);
    const revived = await call("update_api_key", { key_id: created.data.key.key_id, expiration: "never" });
    expect(revived).toMatchObject({ ok: false, code: "ERR_CONFLICT" });
    expect(revived.ok || revived.text).toContain(rotated.data.key.key_id);
    const checked = await call("verify_api_key", { api_key: created.data.api_key });
    expect(checked.ok && checked.data.code).toBe("EXPIRED");
  });
});
