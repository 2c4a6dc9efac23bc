import * as z from "zod";
import { AppError } from "../src/errors.js";
import { DURATION_PATTERN, parseDuration } from "../src/keys/duration.js";
import { resolveExpiration } from "../src/keys/expiration.js";
import { newKeyId } from "../src/keys/ids.js";
import { issueApiKey } from "../src/keys/secret.js";
import { toKeyView } from "../src/keys/view.js";
import { planDelivery } from "../src/delivery/policy.js";
import { defineTool } from "./define-tool.js";
import { commitHandover, deliveryField, deliveryOutput, handOver } from "./delivery.js";
import { keyNotFound } from "./get-api-key.js";
import { expirationField, keyIdField, keyViewSchema, scopesField } from "./schemas.js";

const MAX_GRACE_MS = 7 * 86_400_000;

function revoked(keyId: string): AppError {
  return new AppError("ERR_CONFLICT", `API key ${keyId} is revoked and cannot be rotated. Create a new key instead.`);
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
    "Confirm with the user first. Requires api_keys:write. Not idempotent: each call makes another key.",
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
  },
  output: {
    key: keyViewSchema.describe("The new key."),
    api_key: z.string().optional().describe("The new key's secret, with inline delivery only. Shown only here, never again."),
    delivery: deliveryOutput,
    previous: keyViewSchema.describe("The old key, now expiring at the end of the grace period."),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false },
  async run(args, { actor, repository, delivery: settings, now }) {
    const graceMs = args.grace_period === "0" ? 0 : parseDuration(args.grace_period)!;
    if (graceMs > MAX_GRACE_MS) {
      throw new AppError("ERR_VALIDATION", 'grace_period is longer than 7 days; use at most "7d" (or "168h").');
    }
    const expiresAt = args.expiration === undefined ? undefined : resolveExpiration(args.expiration, now);
    const plan = await planDelivery(args.delivery, settings);

    // Type and environment never change, so reading them first to mint the new secret is safe;
    // the rotation itself re-checks everything inside its transaction.
    const current = await repository.getKey(actor.tenantId, args.key_id);
    if (!current) throw keyNotFound(args.key_id);
    if (current.revokedAt !== null) throw revoked(args.key_id);
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
        }, now),
      async () => (await repository.getKey(actor.tenantId, keyId)) !== undefined,
    );
    if (!result.ok) {
      if (result.reason === "NOT_FOUND") throw keyNotFound(args.key_id);
      if (result.reason === "REVOKED") throw revoked(args.key_id);
      if (result.reason === "CLAIMED") throw new Error("a rotation without an idempotency key was answered CLAIMED");
      throw new AppError(
        "ERR_CONFLICT",
        `API key ${args.key_id} was already rotated to ${result.rotatedTo}. Rotate ${result.rotatedTo} instead.`,
      );
    }
    return {
      output: {
        key: toKeyView(result.key, now),
        ...(handover.apiKey !== undefined && { api_key: handover.apiKey }),
        delivery: handover.delivery,
        previous: toKeyView(result.previous, now),
      },
      notice: handover.notice,
      keyId: args.key_id,
    };
  },
});
