import * as z from "zod";
import { checkApiKey, KEY_CHECK_CODES } from "../src/keys/verify.js";
import { toKeyView } from "../src/keys/view.js";
import { defineTool } from "./define-tool.js";
import { keyViewSchema } from "./schemas.js";

/** V1: is this key good, and if not, why. A key of another tenant is NOT_FOUND. */
export const registerVerifyApiKeyTool = defineTool({
  name: "verify_api_key",
  title: "Verify API key",
  description:
    "Check whether a secret or publishable API key (sk_… or pk_…) is valid for this merchant, e.g. one the user pasted. " +
    "Answers code VALID, MALFORMED (not a key of this format, or mistyped), NOT_FOUND (no such key for this merchant), " +
    "EXPIRED or REVOKED, with the key's details when it exists. A VALID check counts as a use of the key (usage_count, last_used_at). " +
    "Do not repeat the key back to the user. Requires api_keys:read.",
  permission: "api_keys:read",
  input: {
    // Deliberately loose: a wrong shape is an answer (MALFORMED), not a schema error.
    api_key: z.string().max(512).describe("The full API key to check, e.g. sk_test_ followed by 32 letters and digits."),
  },
  output: {
    valid: z.boolean().describe("True only for code VALID."),
    code: z.enum(KEY_CHECK_CODES),
    key: keyViewSchema.optional().describe("The key, when it exists for this merchant (VALID, EXPIRED, REVOKED)."),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  async run(args, { principal, repository, now }) {
    const check = await checkApiKey(args.api_key.trim(), repository, now, principal.tenantId);
    if (!("record" in check)) return { output: { valid: false, code: check.code } };
    return { output: { valid: check.code === "VALID", code: check.code, key: toKeyView(check.record, now) }, keyId: check.record.keyId };
  },
});
