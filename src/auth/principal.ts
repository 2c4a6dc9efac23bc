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
  tenantClaim: string;
  rolePermissions: Readonly<Record<string, Permission[]>>;
}

export type PrincipalResult = { ok: true; principal: Principal } | { ok: false; error: AppError; subject: string | null };

/**
 * Maps verified claims to a principal (A3). Refuses, as a value, a token that names no subject
 * (ERR_AUTH_INVALID) or no tenant (ERR_FORBIDDEN: Hyperswitch's pre-login token has no merchant).
 */
export function principalFromClaims(claims: JWTPayload, options: PrincipalOptions): PrincipalResult {
  // JSON escapes can carry unpaired surrogates ("\ud800") that no UTF-8 text contains. Stored,
  // they would become invalid UTF-8 in the audit log and read back as another string, so a
  // subject or tenant that is not well-formed text is refused rather than altered.
  for (const claim of ["sub", "user_id", options.tenantClaim]) {
    const value = claims[claim];
    if (typeof value === "string" && !value.isWellFormed()) {
      const error = new AppError("ERR_AUTH_INVALID", `The token's ${claim} claim is not valid Unicode text. Ask the user for a token from the real issuer.`);
      return { ok: false, error, subject: null };
    }
  }
  const subject = text(claims.sub) ?? text(claims.user_id);
  if (subject === undefined) {
    const error = new AppError("ERR_AUTH_INVALID", "The token names no user (no sub or user_id claim). Ask the user for a dashboard token issued after sign-in.");
    return { ok: false, error, subject: null };
  }
  const tenantId = text(claims[options.tenantClaim]);
  if (tenantId === undefined) {
    const error = new AppError(
      "ERR_FORBIDDEN",
      `The token is not bound to a merchant (no ${options.tenantClaim} claim), so it cannot manage API keys. ` +
        "Ask the user to finish signing in (including two-factor) and select a merchant, then provide the new token.",
    );
    return { ok: false, error, subject };
  }
  return { ok: true, principal: { tenantId, subject, permissions: permissionsFrom(claims, options.rolePermissions) } };
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
