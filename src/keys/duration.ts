const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Shape of a duration: digits and a unit, `s`, `m`, `h` or `d` (e.g. `90s`, `30m`, `24h`, `7d`). */
export const DURATION_PATTERN = /^(\d{1,6})([smhd])$/;

/** Milliseconds in a duration like `24h`, or `undefined` if it is not one. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text);
  return match ? Number(match[1]) * UNIT_MS[match[2]!]! : undefined;
}

/** A whole number of milliseconds in the largest unit that divides it, e.g. `8h`; the inverse of parseDuration. */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"]) {
    if (ms % UNIT_MS[unit]! === 0) return `${ms / UNIT_MS[unit]!}${unit}`;
  }
  return `${ms / 1000}s`;
}
