import type { RequestHandler } from "express";
import { refuse } from "./responses.js";

/**
 * Browsers only: a request that carries an `Origin` comes from a web page, which must be one of
 * `allowed` (API_KEYS_MCP_ALLOWED_ORIGINS); anything else gets 403 before it is read. Together with
 * the Host check this keeps a page the user happens to visit from driving the server, through
 * DNS rebinding or plain cross-site requests. Native clients send no Origin and pass.
 *
 * The SDK ships a Host check but no Origin check (its transport's own option is deprecated in
 * favour of middleware), hence this piece. An allowed origin also gets the CORS answers a
 * browser needs to send the bearer token and read the challenge.
 */
export function originGuard(allowed: ReadonlySet<string>): RequestHandler {
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origin === undefined) return next();
    if (!allowed.has(origin)) return refuse(res, 403, "Origin not allowed.");
    res.vary("Origin");
    res.set({
      "Access-Control-Allow-Origin": origin,
      "Access-Control-Expose-Headers": "WWW-Authenticate, Retry-After, Mcp-Protocol-Version",
    });
    if (req.method !== "OPTIONS") return next();
    res
      .status(204)
      .set({
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, Accept, Mcp-Protocol-Version",
        "Access-Control-Max-Age": "600",
      })
      .end();
  };
}

/**
 * 413 for a body announced larger than `maxBytes`, before a byte of it is read or anything else
 * is done for the request. A body sent without a length is cut off by the JSON parser's own
 * limit instead. The connection is closed afterwards, so the rest of the body is not read.
 */
export function bodySizeGuard(maxBytes: number): RequestHandler {
  return (req, res, next) => {
    const length = Number(req.headers["content-length"] ?? 0);
    if (!(length > maxBytes)) return next();
    refuse(res, 413, `Request body too large: at most ${maxBytes} bytes.`, { Connection: "close" });
  };
}
