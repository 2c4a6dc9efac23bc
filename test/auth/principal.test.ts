import fc from "fast-check";
import type { JWTPayload } from "jose";
import { describe, expect, it } from "vitest";
import { DEFAULT_ROLE_PERMISSIONS, principalFromClaims, type PrincipalOptions } from "../../src/auth/principal.js";
import { loadConfig } from "../../src/config.js";
import { fuzzParameters } from "../helpers/fuzz.js";
import { TEST_SECRET } from "../helpers/tokens.js";

const DEFAULTS: PrincipalOptions = { tenantClaims: ["merchant_id"], rolePermissions: DEFAULT_ROLE_PERMISSIONS };
const READ = "api_keys:read";
const WRITE = "api_keys:write";

/** The principal's permissions, sorted, or the refusal code. */
function permissionsOf(claims: JWTPayload, options: PrincipalOptions = DEFAULTS): string[] | string {
  const result = principalFromClaims({ sub: "user_1", merchant_id: "merchant_1", ...claims }, options);
  return result.ok ? [...result.principal.permissions].sort() : result.error.code;
}

function optionsWithRoles(json: string): PrincipalOptions {
  const { config, problems } = loadConfig({
    env: { API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_ROLE_PERMISSIONS: json },
    platform: "linux",
    homedir: "/home/tester",
    readFile: () => {
      throw new Error("no files in this test");
    },
  });
  expect(problems).toEqual([]);
  return config.auth!;
}

describe("principalFromClaims (A3)", () => {
  it("takes the subject from sub, and the tenant from merchant_id", () => {
    const result = principalFromClaims({ sub: "user_sub", user_id: "user_hs", merchant_id: "merchant_1", scope: READ }, DEFAULTS);
    expect(result).toEqual({ ok: true, principal: { tenantId: "merchant_1", subject: "user_sub", permissions: new Set([READ]) } });
  });

  it("takes the subject from user_id when there is no sub (Hyperswitch)", () => {
    const result = principalFromClaims({ user_id: "user_hs", merchant_id: "merchant_1", role_id: "merchant_admin" }, DEFAULTS);
    expect(result.ok && result.principal.subject).toBe("user_hs");
  });

  it.each([
    ["an empty sub", { sub: "", user_id: "user_hs" }, "user_hs"],
    ["a numeric sub", { sub: 42 as unknown as string, user_id: "user_hs" }, "user_hs"],
  ])("falls back to user_id past %s", (_label, claims, subject) => {
    const result = principalFromClaims({ ...claims, merchant_id: "merchant_1" }, DEFAULTS);
    expect(result.ok && result.principal.subject).toBe(subject);
  });

  it("refuses a token naming no user with ERR_AUTH_INVALID", () => {
    const result = principalFromClaims({ merchant_id: "merchant_1", scope: READ }, DEFAULTS);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe("ERR_AUTH_INVALID");
    expect(result.subject).toBeNull();
  });

  it.each([
    ["no merchant_id", {}],
    ["an empty merchant_id", { merchant_id: "" }],
    ["a numeric merchant_id", { merchant_id: 7 }],
  ])("refuses a token with %s with ERR_FORBIDDEN, naming its subject", (_label, tenant) => {
    const result = principalFromClaims({ user_id: "user_hs", role_id: "merchant_admin", ...tenant }, DEFAULTS);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe("ERR_FORBIDDEN");
    expect(result.error.publicMessage).toContain("merchant_id");
    expect(result.subject).toBe("user_hs");
  });

  it("reads the tenant from the configured claim only", () => {
    const options = { ...DEFAULTS, tenantClaims: ["https://example.test/merchant"] };
    const result = principalFromClaims({ sub: "u", merchant_id: "ignored", "https://example.test/merchant": "merchant_x", scope: READ }, options);
    expect(result.ok && result.principal.tenantId).toBe("merchant_x");
    const missing = principalFromClaims({ sub: "u", merchant_id: "merchant_1", scope: READ }, options);
    expect(missing.ok ? "OK" : missing.error.code).toBe("ERR_FORBIDDEN");
  });

  it.each([
    ["scope string with both", { scope: `${READ} ${WRITE}` }, [READ, WRITE]],
    ["scope string with read", { scope: READ }, [READ]],
    ["scope string with extra spaces", { scope: `  ${WRITE}   ${READ} ` }, [READ, WRITE]],
    ["scp string", { scp: WRITE }, [WRITE]],
    ["scp array", { scp: [READ, WRITE] }, [READ, WRITE]],
    ["permissions array", { permissions: [READ] }, [READ]],
    ["unknown words ignored", { scope: `openid ${READ} api_keys:admin profile api_keys:*` }, [READ]],
    ["unknown array entries ignored", { permissions: ["payments:write", WRITE, 3, null] }, [WRITE]],
    ["no permission claim, no role", {}, []],
    ["an empty scope", { scope: "" }, []],
  ])("permissions from %s", (_label, claims, expected) => {
    expect(permissionsOf(claims as JWTPayload)).toEqual(expected);
  });

  it.each([
    ["scope", { scope: READ }, [READ]],
    ["scp", { scp: [WRITE] }, [WRITE]],
    ["permissions", { permissions: [READ] }, [READ]],
    ["an empty permissions array", { permissions: [] }, []],
    ["a scope without api_keys words", { scope: "openid email" }, []],
  ])("explicit claims (%s) win over role_id", (_label, claims, expected) => {
    expect(permissionsOf({ role_id: "merchant_admin", ...claims } as JWTPayload)).toEqual(expected);
  });
});

describe("a tenant made of several claims (API_KEYS_MCP_TENANT_CLAIM=tenant_id,merchant_id)", () => {
  const COMPOSITE: PrincipalOptions = { ...DEFAULTS, tenantClaims: ["tenant_id", "merchant_id"] };
  const tenantOf = (claims: JWTPayload, options = COMPOSITE) => {
    const result = principalFromClaims({ sub: "u", scope: READ, ...claims }, options);
    return result.ok ? result.principal.tenantId : result.error.code;
  };

  it("names the tenant by every claim, as a JSON object with sorted names, whatever the listed order", () => {
    const expected = '{"merchant_id":"merchant_1","tenant_id":"public"}';
    expect(tenantOf({ tenant_id: "public", merchant_id: "merchant_1" })).toBe(expected);
    expect(tenantOf({ tenant_id: "public", merchant_id: "merchant_1" }, { ...DEFAULTS, tenantClaims: ["merchant_id", "tenant_id"] })).toBe(expected);
  });

  it("keeps a single claim's value as the tenant id, as before", () => {
    expect(tenantOf({ tenant_id: "public", merchant_id: "merchant_1" }, DEFAULTS)).toBe("merchant_1");
  });

  it("tells apart values that split the same text differently", () => {
    const pairs: [string, string][] = [
      ["a/b", "c"],
      ["a", "b/c"],
      ["a,b", "c"],
      ["a", "b,c"],
      ['a","merchant_id":"b', "c"],
      ["a", 'b","tenant_id":"c'],
      ["a\\", "b"],
      ["a", "\\b"],
      ["a:b", "c"],
      ["a", "b:c"],
      ["a\u0000b", "c"],
      ["a", "b\u0000c"],
    ];
    const ids = pairs.map(([tenant, merchant]) => tenantOf({ tenant_id: tenant, merchant_id: merchant }));
    expect(new Set(ids).size).toBe(pairs.length);
  });

  it("gives two tokens the same tenant exactly when every claim is equal, and JSON.parse gives the claims back", () => {
    // A small alphabet rich in separators and JSON's own characters makes near-collisions common.
    const value = fc.oneof(
      fc.string({ unit: fc.constantFrom("a", "b", "/", ",", ":", '"', "\\", "{", "}", "\u0000", "é"), minLength: 1, maxLength: 5 }),
      fc.string({ unit: "grapheme", minLength: 1, maxLength: 5 }),
    );
    fc.assert(
      fc.property(value, value, value, value, (t1, m1, t2, m2) => {
        const first = tenantOf({ tenant_id: t1, merchant_id: m1 });
        const second = tenantOf({ tenant_id: t2, merchant_id: m2 });
        expect(first === second).toBe(t1 === t2 && m1 === m2);
        expect(JSON.parse(first)).toEqual({ tenant_id: t1, merchant_id: m1 });
      }),
      fuzzParameters(500),
    );
  });

  it.each([
    ["tenant_id", { merchant_id: "merchant_1" }],
    ["merchant_id", { tenant_id: "public" }],
    ["tenant_id", { tenant_id: "", merchant_id: "merchant_1" }],
    ["merchant_id", { tenant_id: "public", merchant_id: 7 }],
  ])("refuses a token without a usable %s with ERR_FORBIDDEN naming that claim", (claim, claims) => {
    const result = principalFromClaims({ user_id: "user_hs", role_id: "merchant_admin", ...claims }, COMPOSITE);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe("ERR_FORBIDDEN");
    expect(result.error.publicMessage).toContain(`no ${claim} claim`);
    expect(result.subject).toBe("user_hs");
  });

  it("refuses a second claim that is not valid Unicode text", () => {
    const result = principalFromClaims({ sub: "u", tenant_id: "public", merchant_id: "merchant_\uD800" }, COMPOSITE);
    expect(result.ok ? "OK" : result.error.publicMessage).toMatch(/merchant_id claim is not valid Unicode/);
  });
});

describe("Hyperswitch roles (A4)", () => {
  it("maps exactly the roles of A4", () => {
    expect(DEFAULT_ROLE_PERMISSIONS).toEqual({
      org_admin: [READ, WRITE],
      merchant_admin: [READ, WRITE],
      merchant_developer: [READ, WRITE],
      merchant_view_only: [READ],
      merchant_iam_admin: [READ],
      merchant_operator: [READ],
      merchant_customer_support: [READ],
    });
  });

  it.each([
    ["org_admin", [READ, WRITE]],
    ["merchant_admin", [READ, WRITE]],
    ["merchant_developer", [READ, WRITE]],
    ["merchant_view_only", [READ]],
    ["merchant_iam_admin", [READ]],
    ["merchant_operator", [READ]],
    ["merchant_customer_support", [READ]],
    ["profile_admin", []],
    ["profile_view_only", []],
    ["some_custom_role", []],
    ["MERCHANT_ADMIN", []],
  ])("role %s gives %j", (role, expected) => {
    expect(permissionsOf({ role_id: role })).toEqual(expected);
  });

  it.each(["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "__defineGetter__", "length"])(
    "prototype-ish role name %s gives nothing",
    (role) => {
      expect(permissionsOf({ role_id: role })).toEqual([]);
    },
  );

  it("ignores a role_id that is not a string", () => {
    expect(permissionsOf({ role_id: ["merchant_admin"] })).toEqual([]);
  });
});

describe("role map override (API_KEYS_MCP_ROLE_PERMISSIONS)", () => {
  it("changes, adds and removes roles while keeping the others", () => {
    const options = optionsWithRoles(
      JSON.stringify({ merchant_operator: [READ, WRITE], profile_admin: [READ], merchant_developer: [] }),
    );
    expect(permissionsOf({ role_id: "merchant_operator" }, options)).toEqual([READ, WRITE]);
    expect(permissionsOf({ role_id: "profile_admin" }, options)).toEqual([READ]);
    expect(permissionsOf({ role_id: "merchant_developer" }, options)).toEqual([]);
    expect(permissionsOf({ role_id: "merchant_admin" }, options)).toEqual([READ, WRITE]);
    expect(permissionsOf({ role_id: "merchant_view_only" }, options)).toEqual([READ]);
  });

  it("does not let explicit claims be overridden by a configured role", () => {
    const options = optionsWithRoles(JSON.stringify({ profile_admin: [READ, WRITE] }));
    expect(permissionsOf({ role_id: "profile_admin", scope: READ }, options)).toEqual([READ]);
  });

  it("gives nothing to __proto__ even when the override names it", () => {
    const options = optionsWithRoles('{"__proto__":["api_keys:write"]}');
    expect(permissionsOf({ role_id: "__proto__" }, options)).toEqual([]);
    expect(permissionsOf({ role_id: "some_custom_role" }, options)).toEqual([]);
    expect(permissionsOf({ role_id: "merchant_view_only" }, options)).toEqual([READ]);
  });

  it("does not change the default map", () => {
    optionsWithRoles(JSON.stringify({ merchant_admin: [] }));
    expect(DEFAULT_ROLE_PERMISSIONS.merchant_admin).toEqual([READ, WRITE]);
    expect(permissionsOf({ role_id: "merchant_admin" })).toEqual([READ, WRITE]);
  });
});
