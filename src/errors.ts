/**
 * Coded errors. Every failure a model can see is an `AppError`: a stable code plus a public
 * message written for the model (what happened, what to do next). Internal detail travels in
 * `cause` and reaches only the stderr log, never the client.
 */
export const ERROR_CODES = [
  "ERR_AUTH_MISSING",
  "ERR_AUTH_INVALID",
  "ERR_AUTH_EXPIRED",
  "ERR_FORBIDDEN",
  "ERR_VALIDATION",
  "ERR_NOT_FOUND",
  "ERR_CONFLICT",
  "ERR_DECLINED",
  "ERR_RATE_LIMITED",
  "ERR_CONFIG",
  "ERR_BUSY",
  "ERR_INTERNAL",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly publicMessage: string;
  /** For ERR_INTERNAL: the id shown to the client and written to the log beside the cause. */
  readonly reference: string | undefined;

  constructor(code: ErrorCode, publicMessage: string, options?: { cause?: unknown; reference?: string }) {
    super(`${code}: ${publicMessage}`, options);
    this.name = "AppError";
    this.code = code;
    this.publicMessage = publicMessage;
    this.reference = options?.reference;
  }
}

/**
 * Any thrown value as an `AppError`; unknown failures become ERR_INTERNAL with a reference id.
 * Backends turn their own expected failures (a busy database) into AppErrors where they happen.
 */
export function toAppError(error: unknown, newReference: () => string): AppError {
  if (error instanceof AppError) return error;
  const reference = newReference();
  return new AppError(
    "ERR_INTERNAL",
    `An unexpected error occurred (reference ${reference}). Nothing was changed; ask the operator to look up this reference in the server log.`,
    { cause: error, reference },
  );
}
