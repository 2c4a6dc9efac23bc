import * as z from "zod";
import { AppError } from "../src/errors.js";
import { isoTime } from "../src/keys/iso-time.js";
import { AUDIT_ACTIONS } from "../src/audit/events.js";
import { defineTool } from "./define-tool.js";
import { keyIdField, nullable } from "./schemas.js";

// What one field held before or after a change. The log is append-only and kept for good, so
// this accepts what any version may have written rather than today's fields one by one: a JSON
// scalar, a list of strings (scopes), or one level of object holding several fields at once (what
// the new key of a rotation starts with). The store records values as unknown, hence the type;
// the SDK checks every answer against this schema before sending it.
const fieldValue = [z.string(), z.number(), z.boolean(), z.array(z.string())] as const;
const noValue = z.null().describe("No value: the field was empty, or the key did not exist yet.");
const changeValue: z.ZodType<unknown> = z.union([
  ...fieldValue,
  noValue,
  z.record(z.string(), z.union([...fieldValue, noValue])).describe("Several fields at once, e.g. the new key of a rotation."),
]);

const auditEventSchema = z.object({
  event_id: z.string(),
  occurred_at: z.iso.datetime(),
  action: z.enum(AUDIT_ACTIONS),
  key_id: nullable(z.string(), "The event is about no single key, e.g. a denied list call."),
  actor: nullable(z.string(), "Not known.").describe("Subject of the token that acted, when known."),
  outcome: z.enum(["success", "denied"]),
  reason: nullable(z.string(), "The call succeeded.").describe("For a denied call, the error code it received."),
  changes: nullable(
    z.record(z.string(), z.object({ from: changeValue, to: changeValue })),
    "Nothing changed: a denied call.",
  ).describe("Each changed field with its old and new value; never a secret."),
  client: nullable(
    z.object({ name: z.string(), version: z.string() }),
    "Not known: the event predates client recording, or the call came through a server that never saw the client's initialize.",
  ).describe("The MCP client (the assistant's app) the call came through, as it named itself: which assistant acted, beside actor (who)."),
});

/** V4: the merchant's audit trail, newest first. */
export const registerListAuditEventsTool = defineTool({
  name: "list_audit_events",
  title: "List audit events",
  description:
    "List the audit trail of this merchant's API keys, newest first: who created, updated, rotated or revoked which key and what changed, " +
    "and calls that were denied. Filter by key_id, action or since; when next_cursor is not null, pass it as cursor for older events " +
    "(a page filtered by key_id may be short, even empty, while next_cursor is not null). " +
    "Never contains secrets. Requires api_keys:read.",
  permission: "api_keys:read",
  input: {
    key_id: keyIdField.optional().describe("Only events about this key."),
    action: z.enum(AUDIT_ACTIONS).optional().describe("Only events of this kind."),
    since: z.iso.datetime({ offset: true }).optional().describe('Only events at or after this ISO-8601 date-time, e.g. "2026-11-01T00:00:00Z".'),
    limit: z.number().int().min(1).max(100).default(20).describe("Events per page, 1 to 100 (default 20)."),
    cursor: z.string().min(1).max(200).optional().describe("next_cursor from the previous page; omit for the newest events."),
  },
  output: {
    events: z.array(auditEventSchema),
    next_cursor: nullable(z.string(), "There are no older events.").describe("Pass as cursor to get older events; null on the last page."),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  async run(args, { principal, repository }) {
    const since = args.since === undefined ? undefined : Date.parse(args.since);
    if (since !== undefined && Number.isNaN(since)) throw new AppError("ERR_VALIDATION", "since is not a valid date-time.");
    const page = await repository.listAuditEvents(principal.tenantId, {
      limit: args.limit,
      cursor: args.cursor,
      keyId: args.key_id,
      action: args.action,
      since,
    });
    return {
      output: {
        events: page.events.map((event) => ({
          event_id: event.eventId,
          occurred_at: isoTime(event.occurredAt),
          action: event.action,
          key_id: event.keyId,
          actor: event.actor,
          outcome: event.outcome,
          reason: event.reason,
          changes: event.changes,
          client: event.client,
        })),
        next_cursor: page.nextCursor,
      },
    };
  },
});
