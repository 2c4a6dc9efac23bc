import { AppError } from "../errors.js";

/**
 * Opaque page cursors. Inside is only the position of the last row returned (its `seq`), so a
 * cursor reveals nothing and is useless to another tenant: every page query is tenant-scoped.
 */
export function encodeCursor(position: number): string {
  return Buffer.from(`k1.${position}`).toString("base64url");
}

export function decodeCursor(cursor: string): number {
  const match = /^k1\.(\d{1,15})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!match) {
    throw new AppError("ERR_VALIDATION", "cursor is not valid; pass next_cursor from the previous page unchanged, or omit it to start from the newest.");
  }
  return Number(match[1]);
}
