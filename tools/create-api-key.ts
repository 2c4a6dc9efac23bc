import * as z from "zod";
import { planDelivery } from "../src/delivery/policy.js";
import { resolveExpiration } from "../src/keys/expiration.js";
import { ENVIRONMENTS, KEY_TYPES } from "../src/keys/format.js";
import { newKeyId } from "../src/keys/ids.js";
import { issueApiKey } from "../src/keys/secret.js";
import { toKeyView } from "../src/keys/view.js";
import { defineTool } from "./define-tool.js";
import { commitHandover, deliveryField, deliveryOutput, handOver } from "./delivery.js";
import { refuseSecretsIn } from "./no-secrets.js";
import { descriptionField, expirationField, keyViewSchema, nameField, scopesField } from "./schemas.js";

/** Creates a key; with rotation, the only place where a new secret is handed over. */
export const registerCreateApiKeyTool = defineTool({
  name: "create_api_key",
  title: "Create API key",
  description:
    "Create a new API key for the merchant the token belongs to. Returns the key's details and hands over its secret once, as delivery says: " +
    'prefer delivery "file" (written to an owner-only file on the server; the result names the path) or { "encrypt_to": <the user\'s public JWK> } ' +
    '(the result holds only a JWE), so that the secret never enters this conversation; with "inline" the secret is in this result (api_key): ' +
    "hand it to the user at once and tell them to store it, as it cannot be retrieved later. " +
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
    delivery: deliveryField,
  },
  output: {
    key: keyViewSchema,
    api_key: z.string().optional().describe("The secret key, with inline delivery only. Shown only here, never again."),
    delivery: deliveryOutput,
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false },
  async run(args, { actor, repository, delivery: settings, now }) {
    refuseSecretsIn({ name: args.name, description: args.description });
    const plan = await planDelivery(args.delivery, settings);
    const expiresAt = resolveExpiration(args.expiration, now);
    const keyId = newKeyId();
    const issued = issueApiKey(args.type, args.environment);
    const handover = await handOver(plan, keyId, issued.plaintext);
    const created = await commitHandover(
      handover,
      () =>
        repository.createKey(actor, {
          keyId,
          name: args.name,
          description: args.description ?? null,
          type: args.type,
          environment: args.environment,
          prefix: issued.prefix,
          hash: issued.hash,
          hashVersion: issued.hashVersion,
          expiresAt,
          scopes: args.scopes,
          delivery: plan.method,
        }, now),
      async () => (await repository.getKey(actor.tenantId, keyId)) !== undefined,
    );
    // Without an idempotency claim a create either makes the key or throws.
    if (!created.ok) throw new Error("a create without an idempotency key was answered CLAIMED");
    return {
      output: { key: toKeyView(created.key, now), ...(handover.apiKey !== undefined && { api_key: handover.apiKey }), delivery: handover.delivery },
      notice: handover.notice,
      keyId,
    };
  },
});
