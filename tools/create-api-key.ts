import * as z from "zod";
import { deliveryFingerprint, planDelivery } from "../src/delivery/policy.js";
import { resolveExpiration } from "../src/keys/expiration.js";
import { expirationForFingerprint, idempotencyClaim, judgeRetry } from "../src/keys/idempotency.js";
import { ENVIRONMENTS, KEY_TYPES } from "../src/keys/format.js";
import { newKeyId } from "../src/keys/ids.js";
import { issueApiKey } from "../src/keys/secret.js";
import { toKeyView } from "../src/keys/view.js";
import { defineTool } from "./define-tool.js";
import { commitHandover, deliveryField, deliveryOutput, handOver } from "./delivery.js";
import { refuseSecretsIn } from "./no-secrets.js";
import { earlyReplay, idempotencyKeyField, replayedOutput, replayNotice, replayOf, type Replay } from "./retry.js";
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
    "Requires api_keys:write. Not idempotent: every call creates another key, so do not repeat a call that succeeded; " +
    "pass an idempotency_key (e.g. a UUID) so that a call repeated after a lost answer returns the first call's key instead of making another.",
  permission: "api_keys:write",
  input: {
    name: nameField,
    description: descriptionField.optional(),
    type: z.enum(KEY_TYPES).default("secret").describe("secret (default, sk_) or publishable (pk_)."),
    environment: z.enum(ENVIRONMENTS).default("test").describe('test (default) or live. Create live keys only when the user asks for them.'),
    expiration: expirationField.default("never"),
    scopes: scopesField.default([]),
    delivery: deliveryField,
    idempotency_key: idempotencyKeyField,
  },
  output: {
    key: keyViewSchema,
    api_key: z.string().optional().describe("The secret key, with inline delivery only. Shown only here, never again."),
    delivery: deliveryOutput,
    replayed: replayedOutput,
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false },
  async run(args, { actor, repository, delivery: settings, now }) {
    refuseSecretsIn({ name: args.name, description: args.description });
    const plan = await planDelivery(args.delivery, settings);
    // What makes two calls the same request: the arguments after defaults, not the secret or the time.
    const claim =
      args.idempotency_key === undefined
        ? undefined
        : idempotencyClaim(
            "create_api_key",
            args.idempotency_key,
            {
              name: args.name,
              description: args.description ?? null,
              type: args.type,
              environment: args.environment,
              expiration: expirationForFingerprint(args.expiration),
              scopes: args.scopes,
              delivery: deliveryFingerprint(plan),
            },
            plan.method,
          );
    const early = await earlyReplay(claim, actor, repository, now);
    if (early) return replayed(early, now);

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
        }, now, claim),
      async () => (await repository.getKey(actor.tenantId, keyId)) !== undefined,
    );
    if (!created.ok) {
      // A repeat that arrived while the first call was still running: its claim won the race.
      const replay = claim && (await replayOf(judgeRetry(created.record, claim, now), claim, actor, repository));
      if (!replay) throw new Error("a create was answered CLAIMED without a live claim");
      return replayed(replay, now);
    }
    return {
      output: {
        key: toKeyView(created.key, now),
        ...(handover.apiKey !== undefined && { api_key: handover.apiKey }),
        delivery: handover.delivery,
        replayed: false,
      },
      notice: handover.notice,
      keyId,
    };
  },
});

/** The answer to a repeated create: the key the first call made, and no secret. */
function replayed({ record, key }: Replay, now: number) {
  return {
    output: { key: toKeyView(key, now), delivery: { method: record.delivery }, replayed: true },
    notice: replayNotice(record),
    keyId: key.keyId,
  };
}
