import { redact } from "../redact.js";
import type { ClientInfo } from "./events.js";

/** Characters kept of a client's name and of its version. */
export const CLIENT_FIELD_MAX = 64;

// Control characters, bidirectional embeddings, overrides and isolates, and unpaired surrogates:
// in an audit listing they only ever hide or fake something.
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNPRINTABLE = /[\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * The client as the audit log records it, from what it declared in `initialize` (null when the
 * server never saw one, as on a server built for a single HTTP request). The client chooses
 * these strings, so they are cleaned before they are stored: unprintable characters removed,
 * anything shaped like an API key or a token redacted, and each cut to CLIENT_FIELD_MAX
 * characters.
 */
export function auditedClient(declared: { name?: unknown; version?: unknown } | undefined): ClientInfo | null {
  if (!declared || typeof declared.name !== "string") return null;
  return { name: clean(declared.name), version: typeof declared.version === "string" ? clean(declared.version) : "" };
}

function clean(text: string): string {
  // Cut first so redaction reads a bounded string; cut again since a marker may lengthen it.
  const cut = (value: string) => [...value].slice(0, CLIENT_FIELD_MAX).join("");
  return cut(redact(cut(text.replace(UNPRINTABLE, "")).trim()));
}
