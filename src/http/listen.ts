import { once } from "node:events";
import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * How long a client may take: to send its headers (slowloris), and its whole request. Tool calls
 * are small and fast; these leave room for slow networks without letting a stuck client hold a
 * connection for long. Node checks them every `CHECK_INTERVAL_MS` and answers 408.
 */
export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = { headersMs: 10_000, requestMs: 30_000 };
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const CHECK_INTERVAL_MS = 1_000;

export interface HttpTimeouts {
  /** To send the request's headers. */
  headersMs: number;
  /** To send the whole request. */
  requestMs: number;
}

export interface RunningHttpServer {
  /** The address actually bound (the port is the one picked when 0 was asked). */
  host: string;
  port: number;
  /** Requests received and not yet answered. */
  readonly inFlight: number;
  /**
   * Stops accepting connections, lets the requests in flight finish for at most `graceMs`, then
   * closes every connection. Resolves true if they all finished in time.
   */
  close(graceMs: number): Promise<boolean>;
}

/**
 * Listens on `host:port`, then serves with the listener `handler` builds for the address bound
 * (the app needs it: the default resource URL names the port).
 */
export async function listenHttp(
  host: string,
  port: number,
  handler: (bound: { host: string; port: number }) => RequestListener,
  timeouts: HttpTimeouts = DEFAULT_HTTP_TIMEOUTS,
): Promise<RunningHttpServer> {
  const server: Server = createServer({
    headersTimeout: timeouts.headersMs,
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckingInterval: CHECK_INTERVAL_MS,
  });
  server.listen(port, host);
  await Promise.race([once(server, "listening"), once(server, "error").then(([error]) => Promise.reject(error as Error))]);
  const bound = { host, port: (server.address() as AddressInfo).port };
  const listener = handler(bound);

  let inFlight = 0;
  let closing = false;
  let drained: (() => void) | undefined;
  server.on("request", (req, res) => {
    inFlight += 1;
    // During shutdown, a request on a kept-alive connection is still served, and its
    // connection is not kept for another.
    if (closing) res.setHeader("Connection", "close");
    res.on("close", () => {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    });
    listener(req, res);
  });

  return {
    ...bound,
    get inFlight() {
      return inFlight;
    },
    async close(graceMs) {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const finished =
        inFlight === 0 ||
        (await new Promise<boolean>((resolve) => {
          drained = () => resolve(true);
          timer = setTimeout(() => resolve(false), graceMs);
        }));
      clearTimeout(timer);
      server.closeAllConnections();
      await closed;
      return finished;
    },
  };
}
