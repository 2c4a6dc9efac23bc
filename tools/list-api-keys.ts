import * as z from "zod";
import { DURATION_PATTERN, parseDuration } from "../src/keys/duration.js";
import { ENVIRONMENTS, KEY_TYPES } from "../src/keys/format.js";
import { toKeyView } from "../src/keys/view.js";
import { STATUS_FILTERS } from "../src/store/repository.js";
import { defineTool } from "./define-tool.js";
import { keyViewSchema, nullable } from "./schemas.js";

/** T2: newest first, keyset pagination; a page costs the same at any depth. */
export const registerListApiKeysTool = defineTool({
  name: "list_api_keys",
  title: "List API keys",
  description:
    "List the merchant's API keys, newest first, one page at a time. By default shows active and expired keys; " +
    'pass status "revoked" or "all" to include revoked ones, environment or type to narrow the list, ' +
    'and expires_within (e.g. "7d") to find keys about to expire. ' +
    "When next_cursor is not null, call again with cursor set to it for the next page; a filtered page may hold fewer keys than limit, " +
    "even none, while next_cursor is not null, so keep paging until it is null before concluding a key is not there. " +
    "Shows prefixes only: secret keys can never be listed or retrieved. Requires api_keys:read.",
  permission: "api_keys:read",
  input: {
    limit: z.number().int().min(1).max(100).default(20).describe("Keys per page, 1 to 100 (default 20)."),
    cursor: z.string().min(1).max(200).optional().describe("next_cursor from the previous page; omit for the first page."),
    status: z
      .enum(STATUS_FILTERS)
      .optional()
      .describe('active, expired, revoked or all. Omitted: active and expired keys, not revoked ones.'),
    environment: z.enum(ENVIRONMENTS).optional().describe("Only test or only live keys."),
    type: z.enum(KEY_TYPES).optional().describe("Only secret or only publishable keys."),
    expires_within: z
      .string()
      .regex(DURATION_PATTERN, 'a duration such as "7d", "24h" or "30m"')
      .optional()
      .describe('Only keys that have not expired yet but will within this duration, e.g. "7d" for "which keys expire this week".'),
  },
  output: {
    keys: z.array(keyViewSchema),
    next_cursor: nullable(z.string(), "This is the last page.").describe("Pass as cursor to get the next page; null on the last page."),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  async run(args, { principal, repository, now }) {
    const { expires_within, ...filters } = args;
    const expiresWithinMs = expires_within === undefined ? undefined : parseDuration(expires_within);
    const page = await repository.listKeys(principal.tenantId, { ...filters, expiresWithinMs, now });
    return { output: { keys: page.keys.map((record) => toKeyView(record, now)), next_cursor: page.nextCursor } };
  },
});
