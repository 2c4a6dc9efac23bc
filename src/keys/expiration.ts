import { AppError } from "../errors.js";
import { isoTime } from "./iso-time.js";

const DAY_MS = 86_400_000;

/** Relative expirations accepted on create and update (K5); `1y` is 365 days. */
export const EXPIRATION_PRESETS = { "30d": 30 * DAY_MS, "90d": 90 * DAY_MS, "1y": 365 * DAY_MS } as const;

export type ExpirationPreset = keyof typeof EXPIRATION_PRESETS;

/** The words an expiration may be given as (the rest are ISO-8601 date-times). */
export const EXPIRATION_WORDS = ["never", ...(Object.keys(EXPIRATION_PRESETS) as ExpirationPreset[])] as const;

/**
 * Resolves an expiration input to epoch milliseconds (UTC), or `null` for `"never"`.
 * The input's shape is checked by the tool schema; this adds what a schema cannot: an explicit
 * date-time must lie in the future.
 */
export function resolveExpiration(input: string, now: number): number | null {
  if (input === "never") return null;
  const relative = EXPIRATION_PRESETS[input as ExpirationPreset];
  if (relative !== undefined) return now + relative;
  const at = Date.parse(input);
  if (Number.isNaN(at)) {
    throw new AppError("ERR_VALIDATION", 'expiration is not a date-time; use "never", "30d", "90d", "1y" or an ISO-8601 date-time with an offset, e.g. "2027-01-31T00:00:00Z".');
  }
  if (at <= now) {
    throw new AppError("ERR_VALIDATION", `expiration ${new Date(at).toISOString()} is not in the future; pick a later date-time or a relative value such as "90d".`);
  }
  return at;
}

/** Epoch milliseconds as an ISO-8601 `Z` string, `null` stays `null`. */
export function toIso(ms: number | null): string | null {
  return ms === null ? null : isoTime(ms);
}
