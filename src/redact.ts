/**
 * Redaction of secrets in log text: API keys and compact JWS/JWE tokens, wherever they stand.
 *
 * A hand-written scanner, not regular expressions, so that its cost is linear in its input on
 * any input: a pattern that backtracks let one hostile line hold the server for minutes. Each
 * character is read a bounded number of times: once to decode escapes, once to split runs, and
 * a fixed number of times by each detector below.
 *
 * What it finds, in any "run" (a maximal stretch of base64url characters and dots):
 * - an API key: `sk_` or `pk_`, `test_` or `live_`, then more than the 4 body characters of a
 *   display prefix; the body is replaced, the type and environment are kept;
 * - a JWS or JWE: a segment that decodes to a JSON object (optional whitespace, `{`, optional
 *   whitespace, `"`), followed by a dot; from there to the end of the run is replaced.
 * Neither needs a word boundary: a secret after a letter, a digit, `_` or an escape such as
 * `\n` is found. A `\uXXXX` escape of a run character (behind any number of backslashes, as in
 * text that was JSON-encoded twice) counts as that character, so a secret partly written in
 * escapes is found too.
 */

const BACKSLASH = 0x5c;
const DOT = 0x2e;
const LETTER_U = 0x75;
const SPACE = 0x20;

/** base64url value of each ASCII code, -1 for the rest. Values 0–61 are exactly base62. */
const BASE64URL = new Int8Array(128).fill(-1);
for (const [value, char] of [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"].entries()) {
  BASE64URL[char.charCodeAt(0)] = value;
}

const HEX = new Int8Array(128).fill(-1);
for (const [value, char] of [..."0123456789abcdef"].entries()) {
  HEX[char.charCodeAt(0)] = value;
  HEX[char.toUpperCase().charCodeAt(0)] = value;
}

/** Whether an ASCII code belongs in a run: base64url or the dot between segments. */
const inRun = (code: number): boolean => code === DOT || (code < 128 && BASE64URL[code]! >= 0);
const isBase62 = (code: number): boolean => code < 128 && BASE64URL[code]! >= 0 && BASE64URL[code]! < 62;

const JWT_MARKER = "[REDACTED_JWT]";
const KEY_MARKER = "[REDACTED]";

/** Bytes a cut may add: `...[N bytes cut]`. */
const CUT_MARKER_ROOM = 32;

/** Replaces every API key and JWT-shaped token in `text` (see the module comment). */
export function redact(text: string): string {
  const { chars, starts } = decode(text, text.length);
  const at = starts ? (v: number) => starts[v]! : (v: number) => v;
  const cuts: [from: number, to: number, marker: string][] = [];
  // Only a run with a dot (a JWT) or `k_` (a key) can hold a secret. The next of each is looked
  // up once and kept until passed, and runs are visited in order, so every character is read a
  // bounded number of times.
  let nextDot = -1;
  let nextKey = -1;
  let done = 0;
  for (;;) {
    if (nextDot < done) nextDot = indexOrEnd(chars, ".", done);
    if (nextKey < done) nextKey = indexOrEnd(chars, "k_", done);
    const next = Math.min(nextDot, nextKey);
    if (next === chars.length) break;
    let start = next;
    while (start > done && inRun(chars.charCodeAt(start - 1))) start--;
    let end = next + 1;
    while (end < chars.length && inRun(chars.charCodeAt(end))) end++;
    findSecrets(chars, start, end, cuts);
    done = end;
  }
  if (cuts.length === 0) return text;
  const pieces: string[] = [];
  let copied = 0;
  for (const [from, to, marker] of cuts) {
    pieces.push(text.slice(copied, at(from)), marker);
    copied = at(to);
  }
  pieces.push(text.slice(copied));
  return pieces.join("");
}

/**
 * `text` redacted and, if that is longer than `maxBytes` of UTF-8, cut to at most `maxBytes`
 * with a marker saying how many bytes of the original were left out. The cut falls between
 * runs, never inside one, and the kept part is redacted as it stands in the whole text, so no
 * part of a secret survives the cut. Costs O(`maxBytes`) however long `text` is (plus the
 * native count of the bytes cut). `maxBytes` should leave room for the marker: 32 or more.
 */
export function shorten(text: string, maxBytes: number): string {
  const whole = redactPrefix(text, maxBytes);
  if (whole.end === text.length) return whole.text;
  const head = redactPrefix(text, Math.max(0, maxBytes - CUT_MARKER_ROOM));
  return `${head.text}...[${Buffer.byteLength(text.slice(head.end))} bytes cut]`;
}

/**
 * The text with its escapes decoded: `chars` has one logical character per position (a decoded
 * escape of a run character in its place, a space for any other escape), `starts` maps each to
 * where it starts in the source. `complete` is false when the window ended before the text did,
 * so the last run may go on.
 */
interface Decoded {
  chars: string;
  /** Source start of each logical character, and of the end; unset when they coincide. */
  starts: Int32Array | undefined;
  end: number;
  complete: boolean;
}

function decode(text: string, window: number): Decoded {
  const complete = window === text.length;
  const chars = complete ? text : text.slice(0, window);
  // Most text has no `\u` escape: then it is its own decoding. A backslash at the window's edge
  // may start one, so that case takes the long way, which stops before it.
  if (chars.indexOf("\\u") < 0 && (complete || chars.charCodeAt(window - 1) !== BACKSLASH)) {
    return { chars, starts: undefined, end: window, complete };
  }
  const codes: number[] = [];
  const starts = new Int32Array(window + 1);
  let i = 0;
  const result = (end: number, complete: boolean): Decoded => {
    starts[codes.length] = end;
    let decoded = "";
    for (let k = 0; k < codes.length; k += 8192) decoded += String.fromCharCode(...codes.slice(k, k + 8192));
    return { chars: decoded, starts, end, complete };
  };
  while (i < window) {
    const code = text.charCodeAt(i);
    if (code !== BACKSLASH) {
      starts[codes.length] = i;
      codes.push(code);
      i += 1;
      continue;
    }
    let u = i + 1;
    while (u < window && text.charCodeAt(u) === BACKSLASH) u++;
    // An escape cut by the window's edge cannot be read: stop before it, as an unfinished run.
    if (!complete && u + 5 > window) return result(i, false);
    const escaped = text.charCodeAt(u) === LETTER_U ? hex4(text, u + 1) : -1;
    if (escaped < 0) {
      // Plain backslashes: none of them can be part of a secret.
      for (; i < u; i++) {
        starts[codes.length] = i;
        codes.push(BACKSLASH);
      }
      continue;
    }
    starts[codes.length] = i;
    codes.push(inRun(escaped) ? escaped : SPACE);
    i = u + 5;
  }
  return result(window, complete);
}

/** The code a `\uXXXX` escape's four hex digits at `at` stand for, or -1. */
function hex4(text: string, at: number): number {
  if (at + 4 > text.length) return -1;
  let value = 0;
  for (let k = at; k < at + 4; k++) {
    const code = text.charCodeAt(k);
    const digit = code < 128 ? HEX[code]! : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

const isHighSurrogate = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdbff;
const isLowSurrogate = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff;

/** UTF-8 bytes of the UTF-16 unit at `at`: half of 4 for each unit of a pair, 3 for a lone one (U+FFFD). */
function utf8Bytes(text: string, at: number): number {
  const unit = text.charCodeAt(at);
  if (unit < 0x80) return 1;
  if (unit < 0x800) return 2;
  if (isHighSurrogate(unit) && isLowSurrogate(text.charCodeAt(at + 1))) return 2;
  if (isLowSurrogate(unit) && isHighSurrogate(text.charCodeAt(at - 1))) return 2;
  return 3;
}

/**
 * How far past its budget `shorten` reads, as a multiple of the budget: far enough that text
 * which fits once its secrets are replaced is kept whole, near enough that its cost stays
 * bounded by the budget, not by the text.
 */
const READ_AHEAD = 4;

/**
 * Redacts the longest prefix of `text` whose redacted form fits in `maxBytes`, cut between runs;
 * `end` is where in `text` the kept prefix ends. Reads at most `READ_AHEAD * maxBytes + 1`
 * characters; a run that goes on past them is left out whole.
 */
function redactPrefix(text: string, maxBytes: number): { text: string; end: number } {
  const decoded = decode(text, text.length <= READ_AHEAD * maxBytes ? text.length : READ_AHEAD * maxBytes + 1);
  const { chars, starts } = decoded;
  const length = chars.length;
  const at = starts ? (v: number) => starts[v]! : (v: number) => v;
  const pieces: string[] = [];
  const cuts: [from: number, to: number, marker: string][] = [];
  let copied = 0;
  let bytes = 0;
  let stop = decoded.end;
  let v = 0;
  while (v < length) {
    if (!inRun(chars.charCodeAt(v))) {
      const from = at(v);
      const size = at(v + 1) - from;
      const cost = size > 1 ? size : utf8Bytes(text, from);
      if (bytes + cost > maxBytes) {
        // Never between the two halves of a surrogate pair.
        stop = isLowSurrogate(text.charCodeAt(from)) && isHighSurrogate(text.charCodeAt(from - 1)) ? from - 1 : from;
        break;
      }
      bytes += cost;
      v += 1;
      continue;
    }
    let end = v + 1;
    while (end < length && inRun(chars.charCodeAt(end))) end++;
    // A run that reaches the edge of what was read may go on: it is cut whole.
    if (end === length && !decoded.complete) {
      stop = at(v);
      break;
    }
    const first = cuts.length;
    findSecrets(chars, v, end, cuts);
    // Runs are ASCII in the source (escapes included): a byte per source character.
    let cost = at(end) - at(v);
    for (let c = first; c < cuts.length; c++) {
      const [from, to, marker] = cuts[c]!;
      cost += marker.length - (at(to) - at(from));
    }
    if (bytes + cost > maxBytes) {
      stop = at(v);
      break;
    }
    for (let c = first; c < cuts.length; c++) {
      const [from, to, marker] = cuts[c]!;
      pieces.push(text.slice(copied, at(from)), marker);
      copied = at(to);
    }
    bytes += cost;
    v = end;
  }
  pieces.push(text.slice(copied, stop));
  return { text: pieces.join(""), end: stop };
}

function indexOrEnd(chars: string, search: string, from: number): number {
  const index = chars.indexOf(search, from);
  return index < 0 ? chars.length : index;
}

/** Adds to `cuts` the secrets in the run `chars[start..end)`, in order. */
function findSecrets(chars: string, start: number, end: number, cuts: [number, number, string][]): void {
  const jwt = jwtStart(chars, start, end);
  const keysEnd = jwt < 0 ? end : jwt;
  for (let i = start; i + 8 < keysEnd; i++) {
    const type = chars.charCodeAt(i);
    if ((type !== 0x73 && type !== 0x70) || chars.charCodeAt(i + 1) !== 0x6b || chars.charCodeAt(i + 2) !== 0x5f || chars.charCodeAt(i + 7) !== 0x5f) continue;
    const environment = chars.slice(i + 3, i + 7);
    if (environment !== "test" && environment !== "live") continue;
    let body = i + 8;
    while (body < keysEnd && isBase62(chars.charCodeAt(body))) body++;
    // A display prefix (4 body characters) is public; anything longer is (part of) a key.
    if (body - (i + 8) <= 4) continue;
    cuts.push([i, body, `${type === 0x73 ? "sk" : "pk"}_${environment}_${KEY_MARKER}`]);
    i = body - 1;
  }
  if (jwt >= 0) cuts.push([jwt, end, JWT_MARKER]);
}

/**
 * Where the first JOSE header of the run `chars[start..end)` starts: the earliest position in a
 * segment followed by a dot from which the segment decodes to a JSON object, or -1.
 */
function jwtStart(chars: string, start: number, end: number): number {
  let segment = start;
  for (let i = start; i < end; i++) {
    if (chars.charCodeAt(i) !== DOT) continue;
    const header = headerStart(chars, segment, i);
    if (header >= 0) return header;
    segment = i + 1;
  }
  return -1;
}

// States of the match of decoded bytes against: whitespace* `{` whitespace* `"`.
const BEFORE_BRACE = 0;
const AFTER_BRACE = 1;
const MATCHED = 2;
const FAILED = 3;

function step(state: number, byte: number): number {
  if (state >= MATCHED) return state;
  if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d) return state;
  if (state === BEFORE_BRACE) return byte === 0x7b ? AFTER_BRACE : FAILED;
  return byte === 0x22 ? MATCHED : FAILED;
}

/**
 * The earliest p in `chars[start..end)` (base64url only) from which the characters decode to a
 * JSON object's start. Whitespace may run on for any length, so each p's answer is built from
 * p + 4's (the next group of 4 characters, 3 bytes), right to left: linear in the segment.
 */
function headerStart(chars: string, start: number, end: number): number {
  // For p + 4, by p mod 4: whether the bytes from there match, entered before or after the brace.
  const fromBefore = [false, false, false, false];
  const fromAfter = [false, false, false, false];
  let earliest = -1;
  for (let p = end - 1; p >= start; p--) {
    const group = Math.min(4, end - p);
    let bits = 0;
    for (let k = 0; k < group; k++) bits = (bits << 6) | BASE64URL[chars.charCodeAt(p + k)]!;
    const byteCount = Math.floor((group * 6) / 8);
    bits >>= group * 6 - byteCount * 8;
    let before = BEFORE_BRACE;
    let after = AFTER_BRACE;
    for (let k = byteCount - 1; k >= 0; k--) {
      const byte = (bits >> (k * 8)) & 0xff;
      before = step(before, byte);
      after = step(after, byte);
    }
    // Still undecided after a whole group: the answer is the next group's.
    const slot = p & 3;
    const nextBefore = group === 4 && fromBefore[slot]!;
    const nextAfter = group === 4 && fromAfter[slot]!;
    const matchesBefore = before === MATCHED || (before === BEFORE_BRACE ? nextBefore : before === AFTER_BRACE && nextAfter);
    fromAfter[slot] = after === MATCHED || (after === AFTER_BRACE && nextAfter);
    fromBefore[slot] = matchesBefore;
    if (matchesBefore) earliest = p;
  }
  return earliest;
}
