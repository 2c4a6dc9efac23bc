import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { Principal } from "./principal.js";

/**
 * The SDK's request context for a caller a transport has verified. The SDK carries whatever the
 * bearer middleware puts in `req.auth` to tool handlers as `extra.authInfo`; the principal rides
 * in `extra`, so a tool never parses or verifies the token again.
 */
export function toAuthInfo(principal: Principal, token: { value: string; clientId: string; expiresAt: number }): AuthInfo {
  return {
    token: token.value,
    clientId: token.clientId,
    scopes: [...principal.permissions],
    expiresAt: token.expiresAt,
    extra: { principal },
  };
}

/** The principal a transport verified, or undefined when the request carries none. */
export function principalOf(authInfo: AuthInfo | undefined): Principal | undefined {
  const principal = authInfo?.extra?.principal as Partial<Principal> | undefined;
  if (typeof principal?.tenantId !== "string" || typeof principal.subject !== "string" || !(principal.permissions instanceof Set)) return undefined;
  return principal as Principal;
}
