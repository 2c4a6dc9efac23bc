import { Transform, type TransformCallback } from "node:stream";

/**
 * The largest message (one line of stdin) the server reads: far above any legitimate request —
 * a tool call carries at most an 8 KiB token and a few hundred characters of fields — and far
 * below what would hurt memory.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

const NEWLINE = 0x0a;

/**
 * Passes stdin through line by line, dropping any line longer than `maxBytes` (reporting its
 * size to `onDiscard`) instead of buffering it.
 *
 * Why: the SDK's stdio transport buffers an unterminated line up to 10 MB and then closes
 * itself, after which the server reads nothing more and the process quietly exits — one
 * oversized or runaway line ended the session. Here memory stays bounded by `maxBytes` and the
 * next line is read as usual. Only complete lines go downstream, so the transport never sees
 * the head of a line that is later dropped.
 */
export function limitLineLength(maxBytes: number, onDiscard: (bytes: number) => void): Transform {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  // While > 0, the current line is being dropped; counts its bytes so far.
  let discarding = 0;

  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      // The usual chunk: whole lines only, none of them over the limit. Passed on untouched.
      if (pendingBytes === 0 && discarding === 0 && chunk.length <= maxBytes && chunk[chunk.length - 1] === NEWLINE) {
        callback(null, chunk);
        return;
      }
      const lines: Buffer[] = [];
      let start = 0;
      for (;;) {
        const end = chunk.indexOf(NEWLINE, start);
        const segment = chunk.subarray(start, end === -1 ? chunk.length : end);
        if (discarding > 0 || pendingBytes + segment.length > maxBytes) {
          discarding += pendingBytes + segment.length;
          pending = [];
          pendingBytes = 0;
        } else if (segment.length > 0) {
          // A copy: the rest of this line arrives with a later chunk, and this one may be reused.
          pending.push(end === -1 ? Buffer.from(segment) : segment);
          pendingBytes += segment.length;
        }
        if (end === -1) break;
        if (discarding > 0) {
          onDiscard(discarding + 1);
          discarding = 0;
        } else {
          lines.push(...pending, Buffer.from([NEWLINE]));
        }
        pending = [];
        pendingBytes = 0;
        start = end + 1;
      }
      callback(null, lines.length > 0 ? Buffer.concat(lines) : undefined);
    },
  });
}
