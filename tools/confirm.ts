import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import type { Actor, Decline } from "../src/audit/events.js";
import { AppError } from "../src/errors.js";
import type { KeyRecord } from "../src/keys/record.js";
import type { KeyRepository } from "../src/store/repository.js";

/** What the user answered: yes, or one of the ways of not saying yes. */
export type ConfirmAnswer = "yes" | Decline["answer"];

/** Asks the user a yes/no question through the client. */
export type Confirm = (question: { message: string; title: string }) => Promise<ConfirmAnswer>;

/** How long a question waits for the user; no answer by then is not a yes. */
export const CONFIRM_TIMEOUT_MS = 5 * 60_000;

/**
 * The confirmation step of this call, or undefined when there is none: only a client that
 * declared form elicitation in its `initialize` to this very server is asked. A server built for
 * a single HTTP request never saw an `initialize`, so it never asks (and behaves as before).
 * Anything but an explicit yes — a decline, a dismissal, an error, a timeout — is not a yes.
 */
export function confirmationFor(
  server: McpServer,
  extra: RequestHandlerExtra<ServerRequest, ServerNotification>,
  onError: (error: unknown) => void,
): Confirm | undefined {
  if (!server.server.getClientCapabilities()?.elicitation?.form) return undefined;
  return async ({ message, title }) => {
    try {
      const result = await server.server.elicitInput(
        {
          mode: "form",
          message,
          // One yes/no and nothing else: a confirmation never asks for anything sensitive.
          requestedSchema: {
            type: "object",
            properties: { confirm: { type: "boolean", title, description: "Choose yes to go ahead; anything else changes nothing.", default: false } },
            required: ["confirm"],
          },
        },
        { relatedRequestId: extra.requestId, signal: extra.signal, timeout: CONFIRM_TIMEOUT_MS },
      );
      if (result.action !== "accept") return result.action;
      return result.content?.confirm === true ? "yes" : "decline";
    } catch (error) {
      onError(error);
      return "no_answer";
    }
  };
}

/** Revoking or rotating a live key that still works is worth a question; a test key is not. */
export function needsConfirmation(key: KeyRecord): boolean {
  return key.environment === "live" && key.revokedAt === null;
}

/**
 * Asks the user to confirm a change to a live key; returns on yes. Otherwise records the
 * declined change in the audit log, changes nothing else, and answers ERR_DECLINED.
 */
export async function confirmChange(
  confirm: Confirm,
  change: Decline["change"],
  key: KeyRecord,
  consequence: string,
  context: { actor: Actor; repository: KeyRepository; now: number },
): Promise<void> {
  const verb = change === "revoke" ? "Revoke" : "Rotate";
  const answer = await confirm({
    message: `${verb} the live API key ${JSON.stringify(key.name)} (${key.keyId}, ${key.prefix}…)? ${consequence}`,
    title: `${verb} this live key`,
  });
  if (answer === "yes") return;
  await context.repository.recordDecline({ actor: context.actor, change, keyId: key.keyId, answer, at: context.now });
  const what = `${change} the live key ${key.keyId}`;
  const why = {
    decline: `The user declined to ${what}`,
    cancel: `The user dismissed the confirmation to ${what}`,
    no_answer: `The confirmation to ${what} got no answer (it timed out, or the client could not show it)`,
  }[answer];
  throw new AppError("ERR_DECLINED", `${why}, so nothing was changed. Do not try again unless the user asks for it.`);
}
