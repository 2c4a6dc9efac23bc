import { open } from "node:fs/promises";
import { AppError } from "../errors.js";
import { MAX_TOKEN_BYTES } from "./verifier.js";

/**
 * The most of API_KEYS_MCP_TOKEN_FILE that is read: eight times the largest token accepted
 * (8 KiB), room for any whitespace around it. A file named by mistake — a log, a disk image, a
 * device that never ends — is never read whole on every call.
 */
export const TOKEN_FILE_MAX_BYTES = 8 * MAX_TOKEN_BYTES;

/** Reads at most `maxBytes` of the file at `path`, as UTF-8. */
export async function readFileHead(path: string, maxBytes: number): Promise<string> {
  const file = await open(path, "r");
  try {
    const buffer = Buffer.allocUnsafe(maxBytes); // only the bytes read are decoded
    let length = 0;
    while (length < maxBytes) {
      const { bytesRead } = await file.read(buffer, length, maxBytes - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return buffer.toString("utf8", 0, length);
  } finally {
    await file.close();
  }
}

export interface TokenSources {
  /** API_KEYS_MCP_TOKEN. */
  value?: string;
  /** API_KEYS_MCP_TOKEN_FILE, read on every call so a refreshed token needs no restart. */
  file?: string;
  /** Reads the token file, at most `maxBytes` of it (the server's: readFileHead). */
  readFile: (path: string, maxBytes: number) => Promise<string>;
}

/**
 * Finds the token for a call (A1): the call's `token` argument, else API_KEYS_MCP_TOKEN, else the
 * file named by API_KEYS_MCP_TOKEN_FILE. A pasted `Bearer ` prefix and surrounding whitespace
 * are dropped.
 */
export function createTokenResolver(sources: TokenSources): (argument: string | undefined) => Promise<string> {
  const configured = clean(sources.value);
  return async (argument) => {
    if (argument !== undefined) {
      // An agent acting for several users passed a token: never fall back to the server's own.
      const given = clean(argument);
      if (given === undefined) {
        throw new AppError("ERR_AUTH_MISSING", "The `token` argument is empty. Pass the user's dashboard JWT, or omit the argument to use the server's configured token.");
      }
      return given;
    }
    if (configured !== undefined) return configured;
    if (sources.file !== undefined) {
      let contents: string;
      try {
        // One byte past the limit is enough to refuse the file.
        contents = await sources.readFile(sources.file, TOKEN_FILE_MAX_BYTES + 1);
      } catch (error) {
        throw new AppError(
          "ERR_AUTH_MISSING",
          "The token file named by API_KEYS_MCP_TOKEN_FILE cannot be read. Ask the user to refresh it, or pass the token in the `token` argument.",
          { cause: error },
        );
      }
      if (Buffer.byteLength(contents) > TOKEN_FILE_MAX_BYTES) {
        throw new AppError(
          "ERR_AUTH_MISSING",
          "The file named by API_KEYS_MCP_TOKEN_FILE is larger than 64 KiB, so it does not hold a token. Ask the user to check which file the setting names, or pass the token in the `token` argument.",
        );
      }
      const fromFile = clean(contents);
      if (fromFile !== undefined) return fromFile;
    }
    throw new AppError(
      "ERR_AUTH_MISSING",
      "No token was provided. Pass the user's dashboard JWT in the `token` argument, or ask the user to set API_KEYS_MCP_TOKEN (or API_KEYS_MCP_TOKEN_FILE) in the server's environment.",
    );
  };
}

function clean(token: string | undefined): string | undefined {
  const trimmed = token?.trim().replace(/^Bearer\s+/i, "");
  return trimmed ? trimmed : undefined;
}
