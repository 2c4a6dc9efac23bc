import type { KeyObject } from "node:crypto";
import { SignJWT, type JWK } from "jose";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { JwksTimings } from "../../src/auth/verifier.js";
import { recordFigures } from "../helpers/figures.js";
import { publicJwk, startJwksServer, type JwksServer } from "../helpers/jwks-server.js";
import { rsaKeyPair } from "../helpers/key-pairs.js";
import { startTestServer, type CallOutcome, type TestClock, type TestServer } from "../helpers/server.js";
import { within } from "../helpers/spawn.js";
import { READ_WRITE } from "../helpers/tokens.js";

// The issuer's key set is a remote dependency: it rotates keys, answers slowly, goes down and
// comes back. jose measures its timeout, cooldown and cache age in real time, so the tests
// inject short ones (JwksTimings) instead of sleeping through 5 s, 30 s or 10 min.

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  jwk: JWK;
}

async function signingKey(kid: string, pair: number): Promise<SigningKey> {
  const { privateKey, publicKey } = rsaKeyPair(pair);
  return { kid, privateKey, jwk: { ...(await publicJwk(publicKey)), kid, alg: "RS256", use: "sig" } };
}

function tokenFor(key: SigningKey, sub = "user_jwks"): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub, merchant_id: "merchant_jwks", scope: READ_WRITE, iat: now, exp: now + 3600 })
    .setProtectedHeader({ alg: "RS256", kid: key.kid })
    .sign(key.privateKey);
}

const outcome = (result: CallOutcome) => (result.ok ? "OK" : result.text);

describe("JWKS: rotation, slowness and outages", () => {
  let first: SigningKey;
  let second: SigningKey;
  let jwks: JwksServer;
  let server: TestServer | undefined;
  const faults = { rotations: 0, timeouts: 0, outages: 0, bad_answers: 0 };

  beforeAll(async () => {
    [first, second] = await Promise.all([signingKey("key-2026-01", 0), signingKey("key-2026-02", 1)]);
  });
  beforeEach(async () => {
    jwks = await startJwksServer([first.jwk]);
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await jwks.close();
  });
  afterAll(() => recordFigures("jwks-resilience", faults));

  const start = async (jwksTimings: Partial<JwksTimings>) => {
    server = await startTestServer({ env: { API_KEYS_MCP_JWT_SECRET: undefined, API_KEYS_MCP_JWKS_URL: jwks.url }, jwks: jwksTimings });
    return server;
  };
  const list = (token: string) => server!.call("list_api_keys", { token });

  it("accepts a new kid without a restart, fetching the key set once more", async () => {
    await start({ cooldownMs: 0 });
    expect(outcome(await list(await tokenFor(first)))).toBe("OK");
    const fetches = jwks.requests;
    jwks.publish([first.jwk, second.jwk]);
    faults.rotations += 1;
    expect(outcome(await list(await tokenFor(second)))).toBe("OK");
    expect(jwks.requests).toBe(fetches + 1);
    // Known kids are served from the cached set.
    expect(outcome(await list(await tokenFor(first, "user_again")))).toBe("OK");
    expect(jwks.requests).toBe(fetches + 1);
  });

  it("fetches at most once per cooldown, however many unknown kids arrive", async () => {
    await start({ cooldownMs: 3_600_000 });
    expect(outcome(await list(await tokenFor(first)))).toBe("OK");
    jwks.publish([first.jwk, second.jwk]);
    // The model is told the refusal may pass once the set is fetched again, not that it is final.
    for (let i = 0; i < 20; i++) {
      expect(outcome(await list(await tokenFor(second, `user_${i}`)))).toMatch(/^ERR_AUTH_INVALID: .*key set does not contain\. If the issuer has just rotated its signing keys, retry in 3600 seconds/);
    }
    expect(jwks.requests).toBe(1);
  });

  // A key the issuer withdraws (say, because it leaked) must stop working once the cached key
  // set ages out — also for tokens the server has already verified and remembers.
  it("stops accepting a withdrawn key once the key set is re-fetched, even for a token it has seen", async () => {
    await start({ cooldownMs: 0, cacheMaxAgeMs: 0 });
    const old = await tokenFor(first);
    expect(outcome(await list(old))).toBe("OK");
    jwks.publish([second.jwk]);
    faults.rotations += 1;
    expect(outcome(await list(old))).toMatch(/^ERR_AUTH_INVALID: .*key set/);
    expect(outcome(await list(await tokenFor(first, "user_new")))).toMatch(/^ERR_AUTH_INVALID: .*key set/);
    expect(outcome(await list(await tokenFor(second)))).toBe("OK");
  });

  // The verdict on a token ends with the copy of the set that reached it, not a full cache period
  // after the verification: a token checked just before its copy aged out would otherwise keep
  // working for almost two periods after its key was withdrawn.
  it("re-verifies a remembered token as soon as the copy of the key set that checked it ages out", async () => {
    // jose dates its copies with Date.now: only Date is faked (timers, fetch and the JWKS server run for real).
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      const clock = Object.assign(() => Date.now(), {
        advance: (ms: number) => vi.setSystemTime(Date.now() + ms),
        set: (ms: number) => vi.setSystemTime(ms),
      }) as TestClock;
      const fetchedAt = Date.now();
      server = await startTestServer({ env: { API_KEYS_MCP_JWT_SECRET: undefined, API_KEYS_MCP_JWKS_URL: jwks.url }, clock, jwks: { cacheMaxAgeMs: 600_000 } });
      expect(outcome(await list(await tokenFor(first, "user_setup")))).toBe("OK");
      expect(jwks.requests).toBe(1);

      clock.set(fetchedAt + 599_000);
      const token = await tokenFor(first);
      expect(outcome(await list(token))).toBe("OK");
      expect(jwks.requests).toBe(1);

      jwks.publish([second.jwk]);
      faults.rotations += 1;
      clock.set(fetchedAt + 600_001);
      expect(outcome(await list(token))).toMatch(/^ERR_AUTH_INVALID: .*key set/);
      expect(jwks.requests).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it("answers ERR_BUSY within the timeout when the key set hangs, then recovers", async () => {
    await start({ timeoutMs: 200 });
    jwks.mode = "hang";
    faults.timeouts += 1;
    const token = await tokenFor(first);
    expect(outcome(await within(list(token), 5000, "ERR_BUSY from a hanging key set"))).toMatch(/^ERR_BUSY: The issuer's key set \(JWKS\) did not answer in time/);
    jwks.mode = "ok";
    expect(outcome(await list(token))).toBe("OK");
  });

  it("answers ERR_BUSY while the key set is down, and serves again once it is back", async () => {
    await start({});
    await jwks.stop();
    faults.outages += 1;
    const token = await tokenFor(first);
    expect(outcome(await list(token))).toMatch(/^ERR_BUSY: The issuer's key set \(JWKS\) could not be fetched/);
    expect(outcome(await list(token))).toMatch(/^ERR_BUSY: /);
    await jwks.start();
    expect(outcome(await list(token))).toBe("OK");
    // An outage is not the caller's fault: no auth.denied rows, no failed-authentication budget spent.
    expect(server!.db!.prepare("SELECT COUNT(*) FROM audit_events").pluck().get()).toBe(0);
  });

  it.each([
    ["error500", /^ERR_BUSY: .*could not be fetched/],
    // A captive portal or a proxy's error page: transient as far as the server can tell.
    ["html", /^ERR_BUSY: .*could not be fetched/],
    ["not-a-jwks", /^ERR_CONFIG: .*API_KEYS_MCP_JWKS_URL/],
  ] as const)("answers a key set that returns %s with a coded error, and recovers", async (mode, expected) => {
    await start({});
    jwks.mode = mode;
    faults.bad_answers += 1;
    const token = await tokenFor(first);
    expect(outcome(await list(token))).toMatch(expected);
    jwks.mode = "ok";
    expect(outcome(await list(token))).toBe("OK");
  });
});
