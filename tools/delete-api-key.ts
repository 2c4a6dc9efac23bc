import { toKeyView } from "../src/keys/view.js";
import { confirmChange, needsConfirmation } from "./confirm.js";
import { defineTool } from "./define-tool.js";
import { keyNotFound } from "./get-api-key.js";
import { keyIdField, keyViewSchema } from "./schemas.js";

/** T5: revocation is a soft delete (K7): the row stays for the audit trail and is never re-activated. */
export const registerDeleteApiKeyTool = defineTool({
  name: "delete_api_key",
  title: "Revoke API key",
  description:
    "Revoke an API key permanently: anything still using it stops working immediately, and it can never be re-activated. " +
    'The key stays visible with status "revoked" (list_api_keys with status "revoked") for the audit trail. ' +
    "Confirm with the user before calling, especially for live keys; when the client supports it, the server also asks the user itself " +
    "before revoking a live key, and a refusal answers ERR_DECLINED (do not retry then). " +
    "Revoking an already revoked key succeeds and changes nothing. Requires api_keys:write.",
  permission: "api_keys:write",
  input: { key_id: keyIdField },
  output: { key: keyViewSchema },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true },
  async run(args, { actor, repository, now, confirm }) {
    if (confirm) {
      const current = await repository.getKey(actor.tenantId, args.key_id);
      if (!current) throw keyNotFound(args.key_id);
      if (needsConfirmation(current)) {
        await confirmChange(confirm, "revoke", current, "Anything using it stops working at once, and a revoked key cannot be restored.", {
          actor,
          repository,
          now,
        });
      }
    }
    const result = await repository.revokeKey(actor, args.key_id, now);
    if (!result.ok) throw keyNotFound(args.key_id);
    return { output: { key: toKeyView(result.key, now) } };
  },
});
