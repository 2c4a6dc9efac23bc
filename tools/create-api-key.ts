import * as z from "zod";
import { resolveExpiration } from "../src/keys/expiration.js";
import { ENVIRONMENTS, KEY_TYPES } from "../src/keys/format.js";
import { newKeyId } from "../src/keys/ids.js";
import { issueApiKey } from "../src/keys/secret.js";
import { toKeyView } from "../src/keys/view.js";
import { defineTool } from "./define-tool.js";
import { refuseSecretsIn } from "./no-secrets.js";
import { descriptionField, expirationField, keyViewSchema, nameField, scopesField } from "./schemas.js";

export const STORE_NOW_NOTICE =
  "Store this API key now: the api_key value below is shown only in this result and can never be retrieved again. " +
  "Give it to the user for their secret manager and do not repeat it elsewhere. If it is lost, create a new key and revoke this one.";

/** Creates a key; with rotation, the only place where a plaintext key is returned. */
export const registerCreateApiKeyTool = defineTool({
  name: "create_api_key",
  title: "Create API key",
  description:
    "Create a new API key for the merchant the token belongs to. Returns the key's details and the secret key itself (api_key), " +
    "which is shown only in this result: hand it to the user at once and tell them to store it; it cannot be retrieved later. " +
    "Secret keys (sk_) are for servers; publishable keys (pk_) may be embedded in client apps. Test keys (…_test_) touch no real money. " +
    "Requires api_keys:write. Not idempotent: every call creates another key, so do not repeat a call that succeeded.",
  permission: "api_keys:write",
  input: {
    name: nameField,
    description: descriptionField.optional(),
    type: z.enum(KEY_TYPES).default("secret").describe("secret (default, sk_) or publishable (pk_)."),
    environment: z.enum(ENVIRONMENTS).default("test").describe('test (default) or live. Create live keys only when the user asks for them.'),
    expiration: expirationField.default("never"),
    scopes: scopesField.default([]),
  },
  output: {
    key: keyViewSchema,
    api_key: z.string().describe("The secret key. Shown only here, never again."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false },
  async run(args, { actor, repository, now }) {
    refuseSecretsIn({ name: args.name, description: args.description });
    const expiresAt = resolveExpiration(args.expiration, now);
    const issued = issueApiKey(args.type, args.environment);
    const created = await repository.createKey(actor, {
      keyId: newKeyId(),
      name: args.name,
      description: args.description ?? null,
      type: args.type,
      environment: args.environment,
      prefix: issued.prefix,
      hash: issued.hash,
      hashVersion: issued.hashVersion,
      expiresAt,
      scopes: args.scopes,
    }, now);
    // Without an idempotency claim a create either makes the key or throws.
    if (!created.ok) throw new Error("a create without an idempotency key was answered CLAIMED");
    return {
      output: { key: toKeyView(created.key, now), api_key: issued.plaintext },
      notice: STORE_NOW_NOTICE,
      keyId: created.key.keyId,
    };
  },
});
