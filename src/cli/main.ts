import { auditCommand } from "./audit.js";
import { decryptCommand } from "./decrypt.js";
import type { Io } from "./io.js";
import { serve } from "./serve.js";
import { mintToken } from "./token.js";

const MAIN_HELP = `api-keys-mcp: an MCP server through which AI assistants manage a merchant's API keys.

Usage:
  api-keys-mcp [serve]            run the MCP server on stdio (what an MCP host starts)
  api-keys-mcp token [options]    mint a token signed with the configured HMAC secret
  api-keys-mcp audit verify       check the audit log's hash chain
  api-keys-mcp decrypt --key <f>  open a key delivered encrypted to you (encrypt_to)
  api-keys-mcp <command> --help   help for a command
  api-keys-mcp --version          print the version

Configuration is by environment variables (API_KEYS_MCP_*); exactly one verification key:
  API_KEYS_MCP_JWT_SECRET, API_KEYS_MCP_JWT_PUBLIC_KEY or API_KEYS_MCP_JWKS_URL
  (or API_KEYS_MCP_JWT_SECRET_FILE / API_KEYS_MCP_JWT_PUBLIC_KEY_FILE).
See the README for every variable, the tools and the error codes.
`;

const SERVE_HELP = `Usage: api-keys-mcp [serve]

Runs the MCP server on stdio: JSON-RPC on stdin/stdout, JSON log lines on stderr.
Stops when stdin closes or on SIGINT/SIGTERM. Configured by API_KEYS_MCP_* variables
(see the README); with no verification key, or an invalid setting, it still starts
and answers every call with ERR_CONFIG saying which setting is wrong and how to fix it.
`;

/**
 * Dispatches a command line. Resolves with an exit code for one-shot commands, or with
 * `undefined` once the server is up (it exits by itself when stdin closes).
 */
export async function main(argv: string[], io: Io): Promise<number | undefined> {
  const [first, ...rest] = argv;
  if (first === "--version" || first === "-v") {
    io.stdout.write(`${io.version}\n`);
    return 0;
  }
  if (first === "--help" || first === "-h" || first === "help") {
    io.stdout.write(MAIN_HELP);
    return 0;
  }
  if (first === "token") return mintToken(rest, io);
  if (first === "audit") return auditCommand(rest, io);
  if (first === "decrypt") return decryptCommand(rest, io);
  if (first === undefined || first === "serve") {
    const options = first === undefined ? [] : rest;
    if (options.includes("--help") || options.includes("-h")) {
      io.stdout.write(SERVE_HELP);
      return 0;
    }
    if (options.includes("--version")) {
      io.stdout.write(`${io.version}\n`);
      return 0;
    }
    if (options.length > 0) {
      io.stderr.write(`api-keys-mcp serve: unknown option ${options[0]}\n\n${SERVE_HELP}`);
      return 2;
    }
    await serve(io);
    return undefined;
  }
  io.stderr.write(`api-keys-mcp: unknown command ${first}\n\n${MAIN_HELP}`);
  return 2;
}
