import type { JWTPayload } from "jose";
import { AppError } from "../errors.js";

export const PERMISSIONS = ["api_keys:read", "api_keys:write"] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** Who is calling, from a verified token. The tenant comes from here and nowhere else (A5). */
export interface Principal {
  tenantId: string;
  subject: string;
  permissions: ReadonlySet<Permission>;
}

const READ_WRITE: Permission[] = ["api_keys:read", "api_keys:write"];
const READ_ONLY: Permission[] = ["api_keys:read"];

/**
 * Hyperswitch dashboard roles (A4), used when a token carries no permission claim. Only
 * merchant-level and organisation-level roles see the merchant's API keys; profile-level roles,
 * unknown roles and tokens without a role get nothing. Overridden by API_KEYS_MCP_ROLE_PERMISSIONS.
 */
export const DEFAULT_ROLE_PERMISSIONS: Readonly<Record<string, Permission[]>> = {
  org_admin: READ_WRITE,
  merchant_admin: READ_WRITE,
  merchant_developer: READ_WRITE,
  merchant_view_only: READ_ONLY,
  merchant_iam_admin: READ_ONLY,
  merchant_operator: READ_ONLY,
  merchant_customer_support: READ_ONLY,
};

export interface PrincipalOptions {
  /** The claims the tenant is made of, each required; one claim's value is the tenant id itself. */
  tenantClaims: readonly string[];
  rolePermissions: Readonly<Record<string, Permission[]>>;
}

export type PrincipalResult = { ok: true; principal: Principal } | { ok: false; error: AppError; subject: string | null };

/**
 * Maps verified claims to a principal (A3). Refuses, as a value, a token that names no subject
 * (ERR_AUTH_INVALID) or lacks a tenant claim (ERR_FORBIDDEN: Hyperswitch's pre-login token has
 * no merchant).
 */
export function principalFromClaims(claims: JWTPayload, options: PrincipalOptions): PrincipalResult {
  // JSON escapes can carry unpaired surrogates ("\ud800") that no UTF-8 text contains, and NUL
  // ("\u0000"), which PostgreSQL's text cannot hold. Stored, the first would become invalid
  // UTF-8 in the audit log and read back as another string, and the second fails every
  // statement on PostgreSQL, so a subject or tenant that not every store can keep as given is
  // refused rather than altered, whichever store this server uses. (A NUL inside a tenant made
  // of several claims is stored escaped, as JSON.)
  const storedAsIs = new Set(["sub", "user_id", ...(options.tenantClaims.length === 1 ? options.tenantClaims : [])]);
  for (const claim of ["sub", "user_id", ...options.tenantClaims]) {
    const value = claims[claim];
    if (typeof value === "string" && (!value.isWellFormed() || (storedAsIs.has(claim) && value.includes("\u0000")))) {
      const error = new AppError("ERR_AUTH_INVALID", `The token's ${claim} claim is not valid Unicode text. Ask the user for a token from the real issuer.`);
      return { ok: false, error, subject: null };
    }
  }
  const subject = text(claims.sub) ?? text(claims.user_id);
  if (subject === undefined) {
    const error = new AppError("ERR_AUTH_INVALID", "The token names no user (no sub or user_id claim). Ask the user for a dashboard token issued after sign-in.");
    return { ok: false, error, subject: null };
  }
  const values: [string, string][] = [];
  for (const claim of options.tenantClaims) {
    const value = text(claims[claim]);
    if (value === undefined) {
      const others = options.tenantClaims.length > 1 ? `; this server's tenant is made of ${options.tenantClaims.join(" and ")}` : "";
      const error = new AppError(
        "ERR_FORBIDDEN",
        `The token is not bound to a merchant (no ${claim} claim${others}), so it cannot manage API keys. ` +
          "Ask the user to finish signing in (including two-factor) and select a merchant, then provide the new token.",
      );
      return { ok: false, error, subject };
    }
    values.push([claim, value]);
  }
  const tenantId = tenantIdFrom(values);
  return { ok: true, principal: { tenantId, subject, permissions: permissionsFrom(claims, options.rolePermissions) } };
}

/**
 * The tenant id stored with keys and audit rows. One claim: its value, as it always was, so a
 * database keeps working. Several: a JSON object of claim name to value, names sorted, e.g.
 * `{"merchant_id":"m_1","tenant_id":"public"}`. JSON quotes every value, so no value can pass
 * for another split (`a/b` + `c` never meets `a` + `b/c`), the listed order does not matter, and
 * `JSON.parse` gives the claims back.
 */
function tenantIdFrom(values: readonly (readonly [claim: string, value: string])[]): string {
  if (values.length === 1) return values[0]![1];
  const sorted = [...values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${sorted.map(([claim, value]) => `${JSON.stringify(claim)}:${JSON.stringify(value)}`).join(",")}}`;
}

/** Explicit permission claims win; only when there are none does the Hyperswitch role decide. */
function permissionsFrom(claims: JWTPayload, roles: Readonly<Record<string, Permission[]>>): Set<Permission> {
  const granted = [claims.scope, claims.scp, claims.permissions].filter((claim) => claim !== undefined);
  if (granted.length > 0) {
    const words = granted.flatMap((claim) => (Array.isArray(claim) ? claim : String(claim).split(" ")));
    return new Set(PERMISSIONS.filter((permission) => words.includes(permission)));
  }
  const role = text(claims.role_id);
  return new Set(role !== undefined && Object.hasOwn(roles, role) ? roles[role] : []);
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}
