import { JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, it } from "vitest";
import { describeProtocolError } from "../../src/cli/protocol-error.js";
import { MAX_MESSAGE_BYTES } from "../../src/cli/line-limit.js";
import { generateApiKey } from "../../src/keys/format.js";
import { createLogger } from "../../src/log.js";

/** The error the SDK's stdio transport reports for `line`, as it reads it. */
function readError(line: string): Error {
  try {
    JSONRPCMessageSchema.parse(JSON.parse(line));
  } catch (error) {
    return error as Error;
  }
  throw new Error("the line was read without error");
}

describe("protocol_error lines", () => {
  it("list a message's distinct issues, cut short, without building the SDK's message", () => {
    const key = generateApiKey("secret", "live");
    // An unknown key of almost 1 MiB, ending in an API key: the SDK's message repeats it 8 times.
    const unknown = `${"eyJ".repeat((MAX_MESSAGE_BYTES - 200) / 3)}_${key}`;
    const error = readError(`{"jsonrpc":"2.0","id":1,"method":"ping","${unknown}":1}`);
    Object.defineProperty(error, "message", {
      get() {
        throw new Error("the SDK's message was built");
      },
    });
    const fields = describeProtocolError(error);
    expect(fields.error).toBe("ZodError");
    const issues = fields.issues as string[];
    expect(issues.length).toBeGreaterThan(1);
    expect(issues).toContain("result: Invalid input: expected object, received undefined");
    expect(issues.some((issue) => issue.startsWith('Unrecognized key: "...['))).toBe(true);
    for (const issue of issues) expect(Buffer.byteLength(issue)).toBeLessThanOrEqual(240);

    const lines: string[] = [];
    createLogger({ level: "info", write: (line) => lines.push(line) }).warn("protocol_error", fields);
    expect(lines[0]!.length).toBeLessThan(4096);
    expect(lines[0]).not.toContain(key.slice(0, 13));
  });

  it("say what is wrong with a short unknown key, redacting a key in it", () => {
    const key = generateApiKey("secret", "test");
    const error = readError(`{"jsonrpc":"2.0","id":1,"method":"ping","extra_${key}":1}`);
    const lines: string[] = [];
    createLogger({ level: "info", write: (line) => lines.push(line) }).warn("protocol_error", describeProtocolError(error));
    expect(lines[0]).not.toContain(key.slice(0, 13));
    expect(JSON.parse(lines[0]!).issues).toContain('Unrecognized key: "extra_sk_test_[REDACTED]"');
  });

  it("keep the message of an error that is not a validation error", () => {
    expect(describeProtocolError(readError("{not json"))).toEqual({ error: "SyntaxError", message: expect.stringMatching(/JSON/) });
  });
});
