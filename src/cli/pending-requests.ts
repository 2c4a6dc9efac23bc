import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";

export interface PendingRequests {
  /** Resolves once every request received so far is answered (true), or after `timeoutMs` (false). */
  settled(timeoutMs: number): Promise<boolean>;
  readonly size: number;
}

/**
 * Counts the requests a connected transport has delivered but not yet answered, so shutdown can
 * wait for them. Without it, a `create_api_key` still running when stdin closes would commit a
 * key whose only copy of the secret — the response — is never sent. Call after `connect()`.
 */
export function trackPendingRequests(transport: Transport): PendingRequests {
  const pending = new Set<string | number>();
  let waiters: (() => void)[] = [];

  const receive = transport.onmessage;
  transport.onmessage = (message, extra) => {
    if ("method" in message && "id" in message) pending.add(message.id);
    receive?.(message, extra);
  };

  const send = transport.send.bind(transport);
  transport.send = async (message, options) => {
    await send(message, options);
    if (!("method" in message) && "id" in message && message.id !== undefined && pending.delete(message.id) && pending.size === 0) {
      for (const wake of waiters) wake();
      waiters = [];
    }
  };

  return {
    get size() {
      return pending.size;
    },
    settled(timeoutMs) {
      if (pending.size === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        waiters.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
  };
}
