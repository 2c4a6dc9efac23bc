import type { ElicitRequest, ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, describe, expect, it } from "vitest";
import { changeEvents, rows } from "../helpers/db.js";
import { startTestServer, type CallOutcome, type TestServer } from "../helpers/server.js";
import { merchantToken } from "../helpers/tokens.js";

type Elicit = ElicitRequest["params"];

function data(result: CallOutcome) {
  if (!result.ok) throw new Error(result.text);
  return result.data;
}

describe("confirmation of changes to live keys, through elicitation", () => {
  let server: TestServer;
  let asked: Elicit[];
  let token: string;

  /** A server whose client answers every question with `answer` (and remembers the questions). */
  const start = async (answer?: (params: Elicit) => ElicitResult | Promise<ElicitResult>) => {
    asked = [];
    server = await startTestServer({
      ...(answer && {
        onElicit: (params: Elicit) => {
          asked.push(params);
          return answer(params);
        },
      }),
    });
    await server.client.listTools();
    token = await merchantToken("merchant_c", "carol");
  };
  const call = (tool: string, args: Record<string, unknown>) => server.call(tool, { token, ...args });
  const createKey = async (environment: "live" | "test" = "live") => data(await call("create_api_key", { name: "checkout", environment })).key;
  const auditOf = async (keyId: string) => data(await call("list_audit_events", { key_id: keyId })).events;

  afterEach(() => server.close());

  it("asks a client that declared elicitation before revoking a live key, and revokes on yes", async () => {
    await start(() => ({ action: "accept", content: { confirm: true } }));
    const key = await createKey();
    const revoked = data(await call("delete_api_key", { key_id: key.key_id }));
    expect(revoked.key.status).toBe("revoked");
    expect(asked).toHaveLength(1);
    const [question] = asked as [Elicit & { requestedSchema: { properties: Record<string, unknown>; required: string[] } }];
    expect(question.mode).toBe("form");
    expect(question.message).toBe(
      `Revoke the live API key "checkout" (${key.key_id}, ${key.prefix}…)? Anything using it stops working at once, and a revoked key cannot be restored.`,
    );
    // One yes/no, nothing else asked.
    expect(Object.keys(question.requestedSchema.properties)).toEqual(["confirm"]);
    expect(question.requestedSchema.properties.confirm).toMatchObject({ type: "boolean", default: false });
    expect(question.requestedSchema.required).toEqual(["confirm"]);
  });

  it.each([
    ["declines", { action: "decline" } as ElicitResult, "decline", /^ERR_DECLINED: The user declined to revoke the live key key_\w+, so nothing was changed\. Do not try again unless the user asks for it\.$/],
    ["dismisses the question", { action: "cancel" } as ElicitResult, "cancel", /^ERR_DECLINED: The user dismissed the confirmation to revoke/],
    ["accepts but leaves the box unticked", { action: "accept", content: { confirm: false } } as ElicitResult, "decline", /^ERR_DECLINED: The user declined/],
  ])("changes nothing when the user %s, answers ERR_DECLINED, and audits the refusal", async (_label, answer, recorded, message) => {
    await start(() => answer);
    const key = await createKey();
    const keysBefore = rows(server.db!, "api_keys");
    const refused = await call("delete_api_key", { key_id: key.key_id });
    expect(refused.ok ? "ok" : refused.text).toMatch(message);
    expect(rows(server.db!, "api_keys")).toEqual(keysBefore);
    expect(changeEvents(server.db!).map((event) => event.action)).toEqual(["api_key.created"]);
    expect((await auditOf(key.key_id))[0]).toMatchObject({
      action: "api_key.revoke_declined",
      outcome: "denied",
      reason: "ERR_DECLINED",
      actor: "carol",
      changes: { confirmation: { from: null, to: recorded } },
      client: { name: "test-client", version: "0.0.0" },
    });
    expect(data(await call("get_api_key", { key_id: key.key_id })).key.status).toBe("active");
  });

  it("treats a client that fails to answer as no yes: nothing changes, and the failure is logged", async () => {
    await start(() => {
      throw new Error("the host's dialog crashed");
    });
    const key = await createKey();
    const refused = await call("delete_api_key", { key_id: key.key_id });
    expect(refused.ok ? "ok" : refused.text).toMatch(/^ERR_DECLINED: The confirmation to revoke the live key key_\w+ got no answer/);
    expect((await auditOf(key.key_id))[0]).toMatchObject({ action: "api_key.revoke_declined", changes: { confirmation: { from: null, to: "no_answer" } } });
    expect(server.logs.find((line) => line.msg === "confirmation_failed")).toMatchObject({ tool: "delete_api_key" });
  });

  it("asks before rotating a live key: a yes rotates, a no makes no new key", async () => {
    let yes = false;
    await start(() => ({ action: "accept", content: { confirm: yes } }));
    const key = await createKey();
    const refused = await call("rotate_api_key", { key_id: key.key_id, grace_period: "24h" });
    expect(refused.ok ? "ok" : refused.code).toBe("ERR_DECLINED");
    expect(asked[0]!.message).toBe(
      `Rotate the live API key "checkout" (${key.key_id}, ${key.prefix}…)? A new key replaces it, and it keeps working for 24h (never past its own expiry).`,
    );
    expect(rows(server.db!, "api_keys")).toHaveLength(1);
    expect((await auditOf(key.key_id))[0]).toMatchObject({ action: "api_key.rotate_declined", reason: "ERR_DECLINED" });

    yes = true;
    const rotated = data(await call("rotate_api_key", { key_id: key.key_id, grace_period: "0" }));
    expect(rotated.previous.key_id).toBe(key.key_id);
    expect(asked[1]!.message).toMatch(/it stops working at once\.$/);
    expect(rows(server.db!, "api_keys")).toHaveLength(2);
  });

  it("asks nothing for test keys, revoked keys, refused rotations, or the repeat of a rotation", async () => {
    await start(() => ({ action: "accept", content: { confirm: true } }));
    const testKey = await createKey("test");
    expect(data(await call("rotate_api_key", { key_id: testKey.key_id, grace_period: "0" })).replayed).toBe(false);
    expect(data(await call("delete_api_key", { key_id: testKey.key_id })).key.status).toBe("revoked");
    expect(asked).toEqual([]);

    const live = await createKey();
    const args = { key_id: live.key_id, grace_period: "1h", idempotency_key: "rotate-live-once" };
    data(await call("rotate_api_key", args));
    expect(asked).toHaveLength(1);
    expect(data(await call("rotate_api_key", args)).replayed).toBe(true);
    const twice = await call("rotate_api_key", { key_id: live.key_id, grace_period: "1h" });
    expect(twice.ok ? "ok" : twice.code).toBe("ERR_CONFLICT");
    expect(asked).toHaveLength(1);

    data(await call("delete_api_key", { key_id: live.key_id }));
    expect(asked).toHaveLength(2);
    data(await call("delete_api_key", { key_id: live.key_id }));
    expect(asked).toHaveLength(2);
  });

  it("keeps today's behaviour for a client without elicitation: live keys are revoked and rotated without a question", async () => {
    await start();
    const key = await createKey();
    const rotated = data(await call("rotate_api_key", { key_id: key.key_id, grace_period: "1h" }));
    expect(data(await call("delete_api_key", { key_id: rotated.key.key_id })).key.status).toBe("revoked");
    expect(rows(server.db!, "audit_events").filter((row) => row.outcome === "denied")).toEqual([]);
  });

  it("answers ERR_NOT_FOUND, asking nothing, for a key that is not the caller's", async () => {
    await start(() => ({ action: "accept", content: { confirm: true } }));
    const key = await createKey();
    const other = await merchantToken("merchant_other", "mallory");
    const refused = await server.call("delete_api_key", { key_id: key.key_id, token: other });
    expect(refused.ok ? "ok" : refused.code).toBe("ERR_NOT_FOUND");
    expect(asked).toEqual([]);
  });
});
