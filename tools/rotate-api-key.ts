import * as z from "zod";
import { AppError } from "../src/errors.js";
import { DURATION_PATTERN, parseDuration } from "../src/keys/duration.js";
import { resolveExpiration } from "../src/keys/expiration.js";
import { newKeyId } from "../src/keys/ids.js";
import { issueApiKey } from "../src/keys/secret.js";
import { toKeyView } from "../src/keys/view.js";
import { STORE_NOW_NOTICE } from "./create-api-key.js";
import { defineTool } from "./define-tool.js";
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
    "never longer than it would have. Returns the new key with its secret api_key, shown only in this result, and the previous key. " +
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
  },
  output: {
    key: keyViewSchema.describe("The new key."),
    api_key: z.string().describe("The new key's secret. Shown only here, never again."),
    previous: keyViewSchema.describe("The old key, now expiring at the end of the grace period."),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false },
  async run(args, { actor, repository, now }) {
    const graceMs = args.grace_period === "0" ? 0 : parseDuration(args.grace_period)!;
    if (graceMs > MAX_GRACE_MS) {
      throw new AppError("ERR_VALIDATION", 'grace_period is longer than 7 days; use at most "7d" (or "168h").');
    }
    const expiresAt = args.expiration === undefined ? undefined : resolveExpiration(args.expiration, now);

    // Type and environment never change, so reading them first to mint the new secret is safe;
    // the rotation itself re-checks everything inside its transaction.
    const current = await repository.getKey(actor.tenantId, args.key_id);
    if (!current) throw keyNotFound(args.key_id);
    if (current.revokedAt !== null) throw revoked(args.key_id);
    const issued = issueApiKey(current.type, current.environment);

    const result = await repository.rotateKey(actor, args.key_id, {
      keyId: newKeyId(),
      prefix: issued.prefix,
      hash: issued.hash,
      hashVersion: issued.hashVersion,
      graceMs,
      expiresAt,
      scopes: args.scopes,
    }, now);
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
      output: { key: toKeyView(result.key, now), api_key: issued.plaintext, previous: toKeyView(result.previous, now) },
      notice: STORE_NOW_NOTICE,
      keyId: args.key_id,
    };
  },
});
