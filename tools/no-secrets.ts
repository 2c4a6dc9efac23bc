import { AppError } from "../src/errors.js";

// A whole API key (the README's pattern, unanchored) or a compact JWS (a base64url JSON header,
// payload and signature). A display prefix such as sk_test_Ab3x is not a secret and passes.
const SECRET_SHAPES = [/(?:sk|pk)_(?:test|live)_[0-9A-Za-z]{32}/, /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/];

/**
 * Refuses free text that carries a secret. A name or description is stored in the key row and,
 * as old and new values, in the audit log, and shown in every listing: a key or token pasted
 * there (a model quoting the key it just received, say) would sit in the database in plain text
 * and be echoed to every reader. The message names the field, never the value.
 */
export function refuseSecretsIn(fields: Record<string, string | null | undefined>): void {
  for (const [field, text] of Object.entries(fields)) {
    if (typeof text === "string" && SECRET_SHAPES.some((shape) => shape.test(text))) {
      throw new AppError(
        "ERR_VALIDATION",
        `${field} contains what looks like an API key or a token. Never put secrets in a key's name or description: they are stored and shown in every listing. Use a label without it (a prefix such as sk_test_Ab3x is fine).`,
      );
    }
  }
}
