import type { JWTPayload } from "jose";
import { describe, expect, it } from "vitest";
import { DEFAULT_ROLE_PERMISSIONS, principalFromClaims, type PrincipalOptions } from "../../src/auth/principal.js";
import { loadConfig } from "../../src/config.js";
import { TEST_SECRET } from "../helpers/tokens.js";

const DEFAULTS: PrincipalOptions = { tenantClaim: "merchant_id", rolePermissions: DEFAULT_ROLE_PERMISSIONS };
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
    const options = { ...DEFAULTS, tenantClaim: "https://example.test/merchant" };
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
