import { customAlphabet } from "nanoid";
import { BASE62_ALPHABET } from "./format.js";

const base62Id = customAlphabet(BASE62_ALPHABET, 20);

/** Key id (K4): `key_` + 20 base62 characters (~119 bits), safe to show and log. */
export function newKeyId(): string {
  return `key_${base62Id()}`;
}

export const KEY_ID_PATTERN = /^key_[0-9A-Za-z]{20}$/;

/** Audit event id: `evt_` + 20 base62 characters. */
export function newEventId(): string {
  return `evt_${base62Id()}`;
}

/** Reference id for an internal error, shown to the client and written to the log. */
export function newErrorReference(): string {
  return `ref_${base62Id().slice(0, 12)}`;
}
