import * as z from "zod";
import { AppError } from "../src/errors.js";
import { DURATION_PATTERN, parseDuration } from "../src/keys/duration.js";
import { resolveExpiration } from "../src/keys/expiration.js";
import { newKeyId } from "../src/keys/ids.js";
import { issueApiKey } from "../src/keys/secret.js";
import { toKeyView } from "../src/keys/view.js";
import { deliveryFingerprint, planDelivery } from "../src/delivery/policy.js";
import { expirationForFingerprint, idempotencyClaim, judgeRetry } from "../src/keys/idempotency.js";
import type { Actor } from "../src/audit/events.js";
import type { KeyRepository } from "../src/store/repository.js";
import { defineTool } from "./define-tool.js";
import { commitHandover, deliveryField, deliveryOutput, handOver } from "./delivery.js";
import { confirmChange, needsConfirmation } from "./confirm.js";
import { keyNotFound } from "./get-api-key.js";
import { earlyReplay, idempotencyKeyField, replayedOutput, replayNotice, replayOf, type Replay } from "./retry.js";
import { expirationField, keyIdField, keyViewSchema, scopesField } from "./schemas.js";

const MAX_GRACE_MS = 7 * 86_400_000;

function revoked(keyId: string): AppError {
  return new AppError("ERR_CONFLICT", `API key ${keyId} is revoked and cannot be rotated. Create a new key instead.`);
}

function alreadyRotated(keyId: string, rotatedTo: string): AppError {
  return new AppError("ERR_CONFLICT", `API key ${keyId} was already rotated to ${rotatedTo}. Rotate ${rotatedTo} instead.`);
}

/** V2: a new secret for the same purpose, with an overlap so callers can switch without downtime. */
export const registerRotateApiKeyTool = defineTool({
  name: "rotate_api_key",
  title: "Rotate API key",
  description:
    "Replace an API key with a new one (a new secret and key_id) with the same name, description, type, environment and scopes. " +
    'The old key keeps working for grace_period ("0" stops it now, e.g. for a leaked key; "24h" gives services a day to switch), ' +
    "never longer than it would have. Returns the new key and the previous key, and hands the new secret over once, as delivery says: " +
    'prefer "file" or { "encrypt_to": <the user\'s public JWK> } so that the secret never enters this conversation; "inline" puts it in this result (api_key). ' +
    "A revoked key cannot be rotated (ERR_CONFLICT); a key already rotated must be rotated through its replacement. " +
    "Confirm with the user first; when the client supports it, the server also asks the user itself before rotating a live key, " +
    "and a refusal answers ERR_DECLINED (do not retry then). Requires api_keys:write. Not idempotent: each call makes another key; pass an idempotency_key " +
    "so that a call repeated after a lost answer returns the first call's result instead.",
  permission: "api_keys:write",
  input: {
    key_id: keyIdField,
    grace_period: z
      .string()
      .regex(new RegExp(`^0$|${DURATION_PATTERN.source}`), 'use "0" or a duration such as "1h", "24h" or "7d"')
      .describe('How long the old key keeps working: "0" (stop now) or a duration up to 7 days, e.g. "1h", "24h", "7d".'),
    expiration: expirationField
      .optional()
      .describe("When the new key expires. Omitted: the old key's lifetime (expires_at − created_at) from now, or never if it never expired."),
    scopes: scopesField.optional().describe("Scopes for the new key; omitted: the old key's."),
    delivery: deliveryField,
    idempotency_key: idempotencyKeyField,
  },
  output: {
    key: keyViewSchema.describe("The new key."),
    api_key: z.string().optional().describe("The new key's secret, with inline delivery only. Shown only here, never again."),
    delivery: deliveryOutput,
    previous: keyViewSchema.describe("The old key, now expiring at the end of the grace period."),
    replayed: replayedOutput,
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false },
  async run(args, { actor, repository, delivery: settings, now, confirm }) {
    const graceMs = args.grace_period === "0" ? 0 : parseDuration(args.grace_period)!;
    if (graceMs > MAX_GRACE_MS) {
      throw new AppError("ERR_VALIDATION", 'grace_period is longer than 7 days; use at most "7d" (or "168h").');
    }
    const plan = await planDelivery(args.delivery, settings);
    const claim =
      args.idempotency_key === undefined
        ? undefined
        : idempotencyClaim(
            "rotate_api_key",
            args.idempotency_key,
            {
              key_id: args.key_id,
              grace_ms: graceMs,
              expiration: args.expiration === undefined ? null : expirationForFingerprint(args.expiration),
              scopes: args.scopes ?? null,
              delivery: deliveryFingerprint(plan),
            },
            plan.method,
          );
    // A repeat is answered before anything else is checked: the key it rotated is not active any more.
    const early = await earlyReplay(claim, actor, repository, now);
    if (early) return replayed(early, actor, repository, now);
    const expiresAt = args.expiration === undefined ? undefined : resolveExpiration(args.expiration, now);

    // Type and environment never change, so reading them first to mint the new secret is safe;
    // the rotation itself re-checks everything inside its transaction.
    const current = await repository.getKey(actor.tenantId, args.key_id);
    if (!current) throw keyNotFound(args.key_id);
    if (current.revokedAt !== null) throw revoked(args.key_id);
    if (current.rotatedTo !== null) throw alreadyRotated(args.key_id, current.rotatedTo);
    if (confirm && needsConfirmation(current)) {
      const consequence =
        graceMs === 0
          ? "A new key replaces it, and it stops working at once."
          : `A new key replaces it, and it keeps working for ${args.grace_period} (never past its own expiry).`;
      await confirmChange(confirm, "rotate", current, consequence, { actor, repository, now });
    }
    const issued = issueApiKey(current.type, current.environment);
    const keyId = newKeyId();
    const handover = await handOver(plan, keyId, issued.plaintext);

    const result = await commitHandover(
      handover,
      () =>
        repository.rotateKey(actor, args.key_id, {
          keyId,
          prefix: issued.prefix,
          hash: issued.hash,
          hashVersion: issued.hashVersion,
          graceMs,
          expiresAt,
          scopes: args.scopes,
          delivery: plan.method,
        }, now, claim),
      async () => (await repository.getKey(actor.tenantId, keyId)) !== undefined,
    );
    if (!result.ok) {
      if (result.reason === "NOT_FOUND") throw keyNotFound(args.key_id);
      if (result.reason === "REVOKED") throw revoked(args.key_id);
      if (result.reason === "CLAIMED") {
        // A repeat that arrived while the first call was still running.
        const replay = claim && (await replayOf(judgeRetry(result.record, claim, now), claim, actor, repository));
        if (!replay) throw new Error("a rotation was answered CLAIMED without a live claim");
        return replayed(replay, actor, repository, now);
      }
      throw alreadyRotated(args.key_id, result.rotatedTo);
    }
    return {
      output: {
        key: toKeyView(result.key, now),
        ...(handover.apiKey !== undefined && { api_key: handover.apiKey }),
        delivery: handover.delivery,
        previous: toKeyView(result.previous, now),
        replayed: false,
      },
      notice: handover.notice,
      keyId: args.key_id,
    };
  },
});

/** The answer to a repeated rotation: the key it made and the key it replaced, as they are now; no secret. */
async function replayed({ record, key }: Replay, actor: Actor, repository: KeyRepository, now: number) {
  const previous = key.rotatedFrom === null ? undefined : await repository.getKey(actor.tenantId, key.rotatedFrom);
  if (!previous) throw new Error(`the key made by a rotation, ${key.keyId}, names no previous key`);
  return {
    output: { key: toKeyView(key, now), delivery: { method: record.delivery }, previous: toKeyView(previous, now), replayed: true },
    notice: replayNotice(record),
    keyId: previous.keyId,
  };
}
