import { AppError } from "../errors.js";

/** Which listing a cursor belongs to, so one listing's cursor is refused by the other. */
export type CursorKind = "k" | "a";

/**
 * Opaque page cursors. Inside is only the position of the last row returned (its `seq`), so a
 * cursor reveals nothing and is useless to another tenant: every page query is tenant-scoped.
 */
export function encodeCursor(kind: CursorKind, position: number): string {
  return Buffer.from(`${kind}1.${position}`).toString("base64url");
}

export function decodeCursor(kind: CursorKind, cursor: string): number {
  const match = /^([ka])1\.(\d{1,15})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!match || match[1] !== kind) {
    throw new AppError("ERR_VALIDATION", "cursor is not valid; pass next_cursor from the previous page unchanged, or omit it to start from the newest.");
  }
  return Number(match[2]);
}

/**
 * One page of a keyset listing from rows fetched with `LIMIT limit + 1`: the extra row, if any,
 * only says there is more, and the cursor points after the last row kept.
 */
export function toPage<Row>(rows: Row[], limit: number, kind: CursorKind, seqOf: (row: Row) => number): { page: Row[]; nextCursor: string | null } {
  if (rows.length <= limit) return { page: rows, nextCursor: null };
  const page = rows.slice(0, limit);
  return { page, nextCursor: encodeCursor(kind, seqOf(page[limit - 1]!)) };
}
