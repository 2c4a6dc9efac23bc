import * as z from "zod";
import type { Actor } from "../src/audit/events.js";
import { AppError } from "../src/errors.js";
import { judgeRetry, type IdempotencyClaim, type IdempotencyRecord, type RetryVerdict } from "../src/keys/idempotency.js";
import type { KeyRecord } from "../src/keys/record.js";
import type { KeyRepository } from "../src/store/repository.js";

/** The `idempotency_key` input of the tools that make a key. */
export const idempotencyKeyField = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7E]+$/, "printable ASCII without spaces, e.g. a UUID")
  .optional()
  .describe(
    "Optional. A unique string you choose for this request, e.g. a UUID. If the answer is lost (a timeout, a dropped connection), call again " +
      "with the same idempotency_key and the same arguments: within 24 hours you get the key the first call made (its details, not its secret) " +
      "instead of a second key. The same idempotency_key with other arguments answers ERR_CONFLICT.",
  );

/** The `replayed` output: whether this answers a repeated call. */
export const replayedOutput = z
  .boolean()
  .describe("True when this answers a repeat of an earlier call (same idempotency_key and arguments): nothing new was made, and no secret is delivered again.");

/** What a retry found in the store, once the key it names has been read. */
export type Replay = { record: IdempotencyRecord; key: KeyRecord };

/**
 * Judges a claim against the record it meets: undefined when the call is fresh; the key the
 * earlier call made when it is a repeat; ERR_CONFLICT when the idempotency key was used with
 * other arguments.
 */
export async function replayOf(
  verdict: RetryVerdict,
  claim: IdempotencyClaim,
  actor: Actor,
  repository: KeyRepository,
): Promise<Replay | undefined> {
  if (verdict.kind === "fresh") return undefined;
  const { record } = verdict;
  if (verdict.kind === "conflict") {
    throw new AppError(
      "ERR_CONFLICT",
      `This idempotency_key was used in the last 24 hours for a ${claim.tool} call with other arguments (it made ${record.keyId}). ` +
        "Repeat that call's arguments to get its answer again, or use a new idempotency_key for a new request.",
    );
  }
  const key = await repository.getKey(actor.tenantId, record.keyId);
  // The store keeps a record only with the key it made, and keys are never deleted.
  if (!key) throw new Error(`idempotency record names ${record.keyId}, which is not in the store`);
  return { record, key };
}

/** The replay of a claim read before anything is made (the common retry), or undefined. */
export async function earlyReplay(claim: IdempotencyClaim | undefined, actor: Actor, repository: KeyRepository, now: number): Promise<Replay | undefined> {
  if (!claim) return undefined;
  const stored = await repository.findIdempotencyRecord(actor.tenantId, claim.tool, claim.keyHash);
  return replayOf(judgeRetry(stored, claim, now), claim, actor, repository);
}

/** The text for a retry's answer: the key exists already, and its secret is not delivered again. */
export function replayNotice(record: IdempotencyRecord): string {
  const how = {
    inline: "in that call's result",
    file: `in the file ${record.keyId}.key in the server's delivery directory`,
    encrypt_to: "encrypted to the public key given with that call",
  }[record.delivery];
  return (
    `This repeats an earlier call with the same idempotency_key and arguments, which already made ${record.keyId}. ` +
    `Its secret was delivered then, ${how}, and is not delivered again. ` +
    'If it was lost, rotate the key (rotate_api_key with grace_period "0") to get a new secret.'
  );
}
