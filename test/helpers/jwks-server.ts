import { once } from "node:events";
import { createServer, type ServerResponse } from "node:http";
import { createPublicKey, type KeyObject } from "node:crypto";
import type { AddressInfo } from "node:net";
import { exportJWK, type JWK } from "jose";

/**
 * The public JWK of a key from generateKeyPairSync. Exported from a copy: on Node 20, exporting
 * a generated key as JWK holds that key's lock while allocating, and a garbage collection that
 * frees the finished generation job in that moment waits for the same lock; the test process
 * then hangs for good. A copy made from PEM has a lock of its own.
 */
export function publicJwk(publicKey: KeyObject): Promise<JWK> {
  return exportJWK(createPublicKey(publicKey.export({ type: "spki", format: "pem" })));
}

/** How the issuer's JWKS endpoint behaves for the next requests. */
export type JwksMode = "ok" | "hang" | "error500" | "html" | "not-a-jwks";

/**
 * A JWKS endpoint on 127.0.0.1 that a test controls: which keys it publishes, whether it
 * answers, hangs or fails, and whether it is up at all (`stop()` closes the port, `start()`
 * listens on the same port again). Counts the requests it receives.
 */
export interface JwksServer {
  readonly url: string;
  readonly requests: number;
  publish(keys: JWK[]): void;
  mode: JwksMode;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startJwksServer(keys: JWK[] = []): Promise<JwksServer> {
  let published = keys;
  let requests = 0;
  const hanging = new Set<ServerResponse>();
  const state = { mode: "ok" as JwksMode };
  const server = createServer((request, response) => {
    requests += 1;
    if (request.url !== "/.well-known/jwks.json") return void response.writeHead(404).end();
    if (state.mode === "hang") return void hanging.add(response);
    if (state.mode === "error500") return void response.writeHead(500).end("upstream trouble");
    if (state.mode === "html") return void response.writeHead(200, { "content-type": "text/html" }).end("<html>Sign in to the Wi-Fi</html>");
    if (state.mode === "not-a-jwks") return void response.writeHead(200, { "content-type": "application/json" }).end('{"issuer":"https://idp.example"}');
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: published }));
  });
  let port = 0;
  const listen = async () => {
    server.listen(port, "127.0.0.1");
    await once(server, "listening");
    port = (server.address() as AddressInfo).port;
  };
  const stop = async () => {
    for (const response of hanging) response.destroy();
    hanging.clear();
    server.closeAllConnections();
    if (server.listening) await new Promise((resolve) => server.close(resolve));
  };
  await listen();
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get requests() {
      return requests;
    },
    publish: (next) => {
      published = next;
    },
    get mode() {
      return state.mode;
    },
    set mode(mode) {
      state.mode = mode;
    },
    stop,
    start: listen,
    close: stop,
  };
}
