import { AppError } from "../src/errors.js";
import { toKeyView } from "../src/keys/view.js";
import { defineTool } from "./define-tool.js";
import { keyIdField, keyViewSchema } from "./schemas.js";

/** The answer for a key that does not exist or belongs to another tenant: the two are indistinguishable (A5). */
export function keyNotFound(keyId: string): AppError {
  return new AppError("ERR_NOT_FOUND", `No API key ${keyId} exists for this merchant. Check the id, or call list_api_keys to find the key.`);
}

/** T3: one key's details. */
export const registerGetApiKeyTool = defineTool({
  name: "get_api_key",
  title: "Get API key",
  description:
    "Get one API key's details by its id (key_…): name, status, prefix, expiry, last use. " +
    "The secret key itself cannot be retrieved; if it is lost, create a new key and revoke the old one. Requires api_keys:read.",
  permission: "api_keys:read",
  input: { key_id: keyIdField },
  output: { key: keyViewSchema },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  async run(args, { principal, repository, now }) {
    const record = await repository.getKey(principal.tenantId, args.key_id);
    if (!record) throw keyNotFound(args.key_id);
    return { output: { key: toKeyView(record, now) } };
  },
});
