import { AppError } from "../errors.js";
import type { DeliveryMethod } from "../keys/record.js";
import { recipientFromJwk, type Recipient } from "./jwe.js";

/** The operator's delivery settings. */
export interface DeliverySettings {
  /** What a call that names no delivery gets (API_KEYS_MCP_DELIVERY, default inline). */
  default: "inline" | "file";
  /** False when API_KEYS_MCP_DELIVERY=file: no key may be returned inline. */
  inlineAllowed: boolean;
  /** API_KEYS_MCP_DELIVERY_DIR, checked at start; absent: file delivery is not available. */
  directory?: string;
}

export const DEFAULT_DELIVERY: DeliverySettings = { default: "inline", inlineAllowed: true };

/** What a call asks for: `delivery` as the tools take it. */
export type DeliveryRequest = "inline" | "file" | { encrypt_to: Record<string, unknown> };

/** How a new key will be handed over, decided before anything is written. */
export type DeliveryPlan =
  | { method: "inline" }
  | { method: "file"; directory: string }
  | { method: "encrypt_to"; recipient: Recipient };

/**
 * Applies the operator's settings to what a call asks for. Refused with ERR_VALIDATION: inline
 * when the operator forbade it, file when no directory is configured, and a recipient key that
 * does not pass `recipientFromJwk`.
 */
export async function planDelivery(request: DeliveryRequest | undefined, settings: DeliverySettings): Promise<DeliveryPlan> {
  const asked = request ?? settings.default;
  if (asked === "inline") {
    if (!settings.inlineAllowed) {
      throw new AppError(
        "ERR_VALIDATION",
        'This server does not return keys inline (the operator set API_KEYS_MCP_DELIVERY=file), so that no key enters the conversation. ' +
          'Use delivery "file" (the key is written to a file on the server) or { "encrypt_to": <the user\'s public JWK> }.',
      );
    }
    return { method: "inline" };
  }
  if (asked === "file") {
    if (settings.directory === undefined) {
      throw new AppError(
        "ERR_VALIDATION",
        'File delivery is not set up on this server (API_KEYS_MCP_DELIVERY_DIR is not set). Use { "encrypt_to": <the user\'s public JWK> }' +
          (settings.inlineAllowed ? ' or "inline"' : "") +
          ", or ask the operator to set API_KEYS_MCP_DELIVERY_DIR.",
      );
    }
    return { method: "file", directory: settings.directory };
  }
  return { method: "encrypt_to", recipient: await recipientFromJwk(asked.encrypt_to) };
}

/** What identifies a plan among requests, for the idempotency fingerprint: the method, and which key it encrypts to. */
export function deliveryFingerprint(plan: DeliveryPlan): DeliveryMethod | { encrypt_to: string } {
  return plan.method === "encrypt_to" ? { encrypt_to: plan.recipient.thumbprint } : plan.method;
}
