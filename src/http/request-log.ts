import type { RequestHandler } from "express";
import { principalOf } from "../auth/auth-info.js";
import type { Logger } from "../log.js";

/**
 * One `http_request` line per request, written once the response is done: method, path (no
 * query), status, duration, and the tenant and subject when the caller was authenticated.
 * Never a header, a token or a body.
 */
export function requestLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.on("close", () => {
      const principal = principalOf(req.auth);
      logger.info("http_request", {
        method: req.method,
        path: req.originalUrl.split("?")[0]!.slice(0, 200),
        status: res.statusCode,
        ...(res.writableFinished ? {} : { aborted: true }),
        duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
        client: req.ip,
        tenant: principal?.tenantId,
        subject: principal?.subject,
      });
    });
    next();
  };
}
