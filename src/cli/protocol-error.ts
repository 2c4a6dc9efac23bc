import type { LogFields } from "../log.js";
import { shorten } from "../redact.js";

/** Issues listed in a `protocol_error` line, and the bytes each may take. */
const MAX_ISSUES = 8;
const MAX_ISSUE_BYTES = 240;
/** Issues looked at, however many the validator reported (a union reports one set per branch). */
const MAX_ISSUES_VISITED = 64;

interface Issue {
  code?: unknown;
  path?: unknown;
  message?: unknown;
  errors?: unknown;
}

/**
 * The fields of a `protocol_error` line for an error the SDK reports on a line it could not
 * read: the error's name and, for a message that failed validation, its distinct issues (where
 * and what), each cut short; otherwise the error's own message.
 *
 * Why not the message of a validation error: the SDK's is all its issues as indented JSON, and
 * a line with an unknown key repeats that key in each of the union's branches — about 8 times.
 * Building it for a 1 MiB line took ~30 ms and 8 MiB; the issues are read here without it.
 */
export function describeProtocolError(error: Error): LogFields {
  const issues = (error as { issues?: unknown }).issues;
  if (!Array.isArray(issues)) return { error: error.name, message: error.message };
  const seen = new Set<string>();
  let visited = 0;
  const visit = (list: unknown[]) => {
    for (const item of list) {
      if (visited++ >= MAX_ISSUES_VISITED) return;
      const issue = (item ?? {}) as Issue;
      // A union's issue only says that no branch matched; its branches say why.
      if (issue.code === "invalid_union" && Array.isArray(issue.errors) && issue.errors.length > 0) {
        for (const branch of issue.errors) if (Array.isArray(branch)) visit(branch);
      } else {
        seen.add(describeIssue(issue));
      }
    }
  };
  visit(issues);
  const shown = [...seen].slice(0, MAX_ISSUES);
  return { error: error.name, issues: shown, ...(seen.size > shown.length ? { issues_not_shown: seen.size - shown.length } : {}) };
}

function describeIssue(issue: Issue): string {
  const path = Array.isArray(issue.path) ? issue.path.map((part) => shorten(String(part), MAX_ISSUE_BYTES)).join(".") : "";
  const message = typeof issue.message === "string" ? issue.message : String(issue.code);
  return shorten(path === "" ? message : `${path}: ${message}`, MAX_ISSUE_BYTES);
}
