import * as z from "zod";
import { EXPIRATION_WORDS } from "../src/keys/expiration.js";
import { ENVIRONMENTS, KEY_TYPES } from "../src/keys/format.js";
import { KEY_ID_PATTERN } from "../src/keys/ids.js";
import { MAX_SCOPES, normalizeScopes, SCOPE_PATTERN } from "../src/keys/scopes.js";
import { KEY_STATUSES, type KeyView } from "../src/keys/view.js";

// Control characters in a label only ever hide something (a fake line in a terminal, a NUL that
// cuts a string short in another system), so names refuse them all and descriptions allow
// only newline and tab. Unpaired UTF-16 surrogates are refused too: they are not text, SQLite
// would store them as invalid UTF-8, and the name read back would differ from the one the
// create result acknowledged. A character is a code unit outside the forbidden and surrogate
// ranges, or a surrogate pair. Written as ranges, not \p{Cc}, so every JSON Schema engine reads
// them, with or without the `u` flag. Bidirectional embeddings, overrides and isolates
// (U+202A–U+202E, U+2066–U+2069) are refused in both: they make a label read differently from
// what it is ("invoice\u202Egpj.exe" shows as "invoiceexe.jpg"), to a person reading a listing
// and to a model quoting it back; plain right-to-left text needs none of them.
const BIDI_CONTROLS = "\\u202A-\\u202E\\u2066-\\u2069";
const textPattern = (forbidden: string) => new RegExp(`^(?:[^${forbidden}\\uD800-\\uDFFF]|[\\uD800-\\uDBFF][\\uDC00-\\uDFFF])*$`);
const NAME_TEXT = textPattern(`\\x00-\\x1F\\x7F-\\x9F${BIDI_CONTROLS}`);
const DESCRIPTION_TEXT = textPattern(`\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F${BIDI_CONTROLS}`);

/** Input fields shared by several tools. */
export const keyIdField = z
  .string()
  .regex(KEY_ID_PATTERN, "a key id looks like key_ followed by 20 letters and digits")
  .describe("The key's id, e.g. key_3Zx9Qw2LmN8pRt5VbC1d, from create_api_key or list_api_keys. Not the secret key itself.");

export const nameField = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(NAME_TEXT, "no control characters, bidirectional overrides or unpaired surrogates")
  .describe("A human-readable label, 1 to 64 characters, e.g. \"checkout-service production\".");

export const descriptionField = z
  .string()
  .max(256)
  .regex(DESCRIPTION_TEXT, "no control characters other than newline and tab, no bidirectional overrides, no unpaired surrogates")
  .describe("Optional note about what the key is for, up to 256 characters.");

export const expirationField = z
  .union([z.enum(EXPIRATION_WORDS), z.iso.datetime({ offset: true })])
  .describe(
    'When the key stops working: "never", "30d", "90d", "1y" (365 days), or an ISO-8601 date-time in the future with Z or an offset, e.g. "2027-01-31T00:00:00Z".',
  );

export const scopesField = z
  .array(z.string().regex(SCOPE_PATTERN, 'a scope is resource:action in lowercase, e.g. "payments:read" or "refunds:*"'))
  .max(MAX_SCOPES)
  .transform(normalizeScopes)
  .describe(
    `What the key may be used for, up to ${MAX_SCOPES} "resource:action" strings such as "payments:read" or "refunds:*" (lowercase, no spaces). ` +
      "An empty list means unrestricted. Enforced by the service that verifies the key.",
  );

/** The optional per-call token of A1, added to every tool's input. */
export const tokenField = z
  .string()
  .min(1)
  .optional()
  .describe(
    "Optional. The user's dashboard JWT, for agents acting for several users. Omit it to use the token configured in the server's environment.",
  );

/**
 * `inner` or null, published the same way wherever it appears: `anyOf: [inner, { type: "null",
 * description }]`. zod's own `.nullable()` prints an unconstrained inner type as a type array
 * (`type: ["string", "null"]`) and a constrained one as `anyOf`, so one idea came out two ways,
 * and a type array is what clients that map schemas onto a single-`type` dialect (the OpenAPI
 * subset of Gemini's function declarations) reject. zod folds an `anyOf` into a type array only
 * when every branch is a bare type; the null branch here always carries `whenNull`, the meaning
 * of null for this field, so the pair is never folded.
 */
export function nullable<Inner extends z.ZodType>(inner: Inner, whenNull: string) {
  return z.union([inner, z.null().describe(whenNull)]);
}

const timestamp = z.iso.datetime();

export const keyViewSchema = z
  .object({
    key_id: z.string().describe("Stable id of the key; use it with get, update and delete."),
    name: z.string(),
    description: nullable(z.string(), "No description."),
    type: z.enum(KEY_TYPES).describe("secret (sk_, server side only) or publishable (pk_, may be embedded in clients)."),
    environment: z.enum(ENVIRONMENTS),
    prefix: z.string().describe("First characters of the key, e.g. sk_test_Ab3x, to recognise it; not usable as a key."),
    status: z.enum(KEY_STATUSES),
    created_at: timestamp,
    updated_at: timestamp,
    expires_at: nullable(timestamp, "Never expires."),
    revoked_at: nullable(timestamp, "Not revoked."),
    last_used_at: nullable(timestamp, "No use counted yet."),
    usage_count: z.number().int().nonnegative(),
    created_by: z.string().describe("Subject (user id) of the token that created the key."),
    scopes: z.array(z.string()).describe("What the key may be used for; empty means unrestricted."),
    rotated_from: nullable(z.string(), "Not made by a rotation.").describe("The key this one replaced by rotation, if any."),
    rotated_to: nullable(z.string(), "Not rotated.").describe("The key that replaced this one by rotation, if any."),
  })
  .describe("An API key's details. Never contains the secret key or its hash.") satisfies z.ZodType<KeyView>;
