import { customAlphabet } from "nanoid";
import { BASE62_ALPHABET } from "./format.js";

const base62Id = customAlphabet(BASE62_ALPHABET, 20);

/** Key id (K4): `key_` + 20 base62 characters (~119 bits), safe to show and log. */
export function newKeyId(): string {
  return `key_${base62Id()}`;
}

export const KEY_ID_PATTERN = /^key_[0-9A-Za-z]{20}$/;

const base62Random12 = customAlphabet(BASE62_ALPHABET, 12);

/**
 * Audit event id: `evt_` + 20 base62 characters, the first 8 the time in milliseconds and the
 * rest random (~71 bits). Time first, so the unique index on event ids grows at its right edge
 * like the log itself, instead of dirtying a random index page on every write.
 */
export function newEventId(at: number): string {
  let time = "";
  for (let rest = Math.max(0, Math.floor(at)), i = 0; i < 8; i++, rest = Math.floor(rest / 62)) {
    time = BASE62_ALPHABET.charAt(rest % 62) + time;
  }
  return `evt_${time}${base62Random12()}`;
}

/** Reference id for an internal error, shown to the client and written to the log. */
export function newErrorReference(): string {
  return `ref_${base62Id().slice(0, 12)}`;
}
