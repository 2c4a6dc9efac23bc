import { AppError } from "../src/errors.js";
import { resolveExpiration } from "../src/keys/expiration.js";
import { toKeyView } from "../src/keys/view.js";
import type { KeyPatch } from "../src/keys/record.js";
import { defineTool } from "./define-tool.js";
import { refuseSecretsIn } from "./no-secrets.js";
import { keyNotFound } from "./get-api-key.js";
import { descriptionField, expirationField, keyIdField, keyViewSchema, nameField, nullable, scopesField } from "./schemas.js";

/** T4: renames, re-describes or re-dates a key; the secret itself never changes. */
export const registerUpdateApiKeyTool = defineTool({
  name: "update_api_key",
  title: "Update API key",
  description:
    "Change an API key's name, description, expiration or scopes. The key id and the secret stay the same, so nothing using the key breaks. " +
    "Pass only the fields to change (at least one); description null clears it; expiration can extend or shorten the key's life. " +
    "A revoked key cannot be updated, and a key replaced by rotation cannot be given a later expiration (ERR_CONFLICT). Requires api_keys:write. Idempotent: repeating the same change changes nothing more.",
  permission: "api_keys:write",
  input: {
    key_id: keyIdField,
    name: nameField.optional(),
    description: nullable(descriptionField, "Clears the description.").optional().describe("New description, or null to clear it."),
    expiration: expirationField.optional(),
    scopes: scopesField.optional().describe("The new complete list of scopes (replaces the old one); [] makes the key unrestricted."),
  },
  output: { key: keyViewSchema },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true },
  async run(args, { actor, repository, now }) {
    if (args.name === undefined && args.description === undefined && args.expiration === undefined && args.scopes === undefined) {
      throw new AppError("ERR_VALIDATION", "Nothing to update: pass at least one of name, description, expiration or scopes.");
    }
    refuseSecretsIn({ name: args.name, description: args.description });
    const patch: KeyPatch = {};
    if (args.name !== undefined) patch.name = args.name;
    if (args.description !== undefined) patch.description = args.description;
    if (args.expiration !== undefined) patch.expiresAt = resolveExpiration(args.expiration, now);
    if (args.scopes !== undefined) patch.scopes = args.scopes;

    const result = await repository.updateKey(actor, args.key_id, patch, now);
    if (!result.ok && result.reason === "NOT_FOUND") throw keyNotFound(args.key_id);
    if (!result.ok && result.reason === "ROTATED") {
      throw new AppError(
        "ERR_CONFLICT",
        `API key ${args.key_id} was replaced by rotation (by ${result.rotatedTo}): its expiration can be brought forward, never moved later. ` +
          `Use ${result.rotatedTo} instead, or revoke ${args.key_id} to stop it now.`,
      );
    }
    if (!result.ok) {
      throw new AppError("ERR_CONFLICT", `API key ${args.key_id} is revoked and can no longer be changed. Create a new key if one is needed.`);
    }
    return { output: { key: toKeyView(result.key, now) } };
  },
});
