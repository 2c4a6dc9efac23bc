import { auditCommand } from "./audit.js";
import { decryptCommand } from "./decrypt.js";
import type { Io } from "./io.js";
import { serve } from "./serve.js";
import { mintToken } from "./token.js";

const MAIN_HELP = `api-keys-mcp: an MCP server through which AI assistants manage a merchant's API keys.

Usage:
  api-keys-mcp [serve]            run the MCP server on stdio (what an MCP host starts)
  api-keys-mcp serve --http       run it over Streamable HTTP, for remote clients
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
       api-keys-mcp serve --http [--host <address>] [--port <port>]

Without --http: the MCP server on stdio, JSON-RPC on stdin/stdout, JSON log lines on
stderr. Stops when stdin closes or on SIGINT/SIGTERM. With no verification key, or an
invalid setting, it still starts and answers every call with ERR_CONFIG saying which
setting is wrong and how to fix it.

With --http: MCP over Streamable HTTP at POST /mcp (stateless), for remote clients. Every
request carries the user's token as Authorization: Bearer <token>; API_KEYS_MCP_TOKEN and
API_KEYS_MCP_TOKEN_FILE are never used. Also serves the OAuth protected resource metadata
(/.well-known/oauth-protected-resource/mcp) and GET /healthz. Log lines on stderr.
Stops on SIGINT/SIGTERM after the requests in flight (at most 10 s).
  --host <address>   address to listen on (API_KEYS_MCP_HTTP_HOST, default 127.0.0.1);
                     any other than loopback needs API_KEYS_MCP_ALLOWED_HOSTS
  --port <port>      port (API_KEYS_MCP_HTTP_PORT, default 8787; 0 picks a free one)
Serve plain HTTP on loopback, or behind a reverse proxy that terminates TLS.

Configured by API_KEYS_MCP_* variables; see the README for all of them.
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
    const parsed = parseServeOptions(options);
    if (typeof parsed === "string") {
      io.stderr.write(`api-keys-mcp serve: ${parsed}\n\n${SERVE_HELP}`);
      return 2;
    }
    if (parsed.http) {
      // Loaded only when asked for: Express and the HTTP pieces would add to every stdio start-up.
      const { serveHttp } = await import("./serve-http.js");
      return serveHttp(io, parsed);
    }
    await serve(io);
    return undefined;
  }
  io.stderr.write(`api-keys-mcp: unknown command ${first}\n\n${MAIN_HELP}`);
  return 2;
}

/** `serve` options: `--http`, and `--host`/`--port` (as `--port 8787` or `--port=8787`) with it. Or what is wrong. */
function parseServeOptions(options: string[]): { http: boolean; host?: string; port?: string } | string {
  const parsed: { http: boolean; host?: string; port?: string } = { http: false };
  for (let i = 0; i < options.length; i += 1) {
    const option = options[i]!;
    if (option === "--http") {
      parsed.http = true;
      continue;
    }
    const [name, inline] = option.split(/=(.*)/s, 2) as [string, string | undefined];
    if (name !== "--host" && name !== "--port") return `unknown option ${option}`;
    const value = inline ?? options[++i];
    if (value === undefined || value === "") return `${name} needs a value`;
    parsed[name === "--host" ? "host" : "port"] = value;
  }
  if (!parsed.http && (parsed.host !== undefined || parsed.port !== undefined)) return "--host and --port need --http";
  return parsed;
}
