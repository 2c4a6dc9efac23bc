/**
 * Key scopes (V3): what a key may be used for, as `resource:action` strings such as
 * `payments:read` or `refunds:*`. The server stores and returns them; the service that verifies a
 * key enforces them. An empty list means unrestricted.
 */
export const SCOPE_PATTERN = /^[a-z][a-z0-9_.-]{0,63}:(?:\*|[a-z][a-z0-9_.-]{0,63})$/;

export const MAX_SCOPES = 50;

/** Sorted and without duplicates, so equal sets compare and display the same. */
export function normalizeScopes(scopes: readonly string[]): string[] {
  return [...new Set(scopes)].sort();
}
