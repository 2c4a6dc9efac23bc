import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { AppError } from "../errors.js";

/** Which listing a cursor belongs to, so one listing's cursor is refused by the other. */
export type CursorKind = "k" | "a";

/** A position in a listing: the sort key of the last row a page covered (integers). */
export type Position = readonly number[];

const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Bytes of the cursor key (AES-256). */
export const CURSOR_KEY_BYTES = 32;

/** A fresh cursor key; a backend keeps one in its database so every instance shares it. */
export function newCursorKey(): Buffer {
  return randomBytes(CURSOR_KEY_BYTES);
}

export interface CursorCodec {
  encode(kind: CursorKind, tenantId: string, position: Position): string;
  /** The position, or ERR_VALIDATION for anything this store did not issue to this tenant for this listing. */
  decode(kind: CursorKind, tenantId: string, cursor: string): Position;
}

/**
 * Opaque page cursors, sealed with AES-256-GCM under a key kept in the database. A position is
 * a row's place in a sequence shared by every tenant, so in the clear two cursors would tell a
 * tenant how many rows other tenants wrote in between; sealed, a cursor reveals nothing. The
 * listing kind and the tenant are authenticated data: a cursor from the other listing, from
 * another tenant or altered in any bit fails to open and is refused like garbage.
 */
export function createCursorCodec(key: Uint8Array): CursorCodec {
  if (key.byteLength !== CURSOR_KEY_BYTES) throw new TypeError(`the cursor key must be ${CURSOR_KEY_BYTES} bytes`);
  const aad = (kind: CursorKind, tenantId: string) => Buffer.from(`${kind}\u0000${tenantId}`, "utf8");
  return {
    encode(kind, tenantId, position) {
      const plain = Buffer.allocUnsafe(8 * position.length);
      position.forEach((value, i) => plain.writeBigInt64BE(BigInt(value), 8 * i));
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      cipher.setAAD(aad(kind, tenantId));
      const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return sealed.toString("base64url");
    },
    decode(kind, tenantId, cursor) {
      const sealed = Buffer.from(cursor, "base64url");
      const length = sealed.length - IV_BYTES - TAG_BYTES;
      if (length <= 0 || length % 8 !== 0 || length > 64) throw invalidCursor();
      const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, IV_BYTES));
      decipher.setAAD(aad(kind, tenantId));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw invalidCursor();
      }
      const position: number[] = [];
      for (let offset = 0; offset < plain.length; offset += 8) position.push(Number(plain.readBigInt64BE(offset)));
      return position;
    },
  };
}

function invalidCursor(): AppError {
  return new AppError("ERR_VALIDATION", "cursor is not valid; pass next_cursor from the previous page unchanged, or omit it to start from the newest.");
}
