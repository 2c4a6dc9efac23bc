import { isIPv6 } from "node:net";
import type { Request } from "express";

/**
 * The key failed authentications are counted under: the client's address (from
 * `X-Forwarded-For` only when the peer is a trusted proxy, see API_KEYS_MCP_TRUST_PROXY). An
 * IPv6 client is counted by its /64 network, the smallest block a single subscriber is usually
 * given: one holder of a /64 could otherwise take a fresh address for every attempt.
 */
export function clientKey(req: Request): string {
  const address = req.ip ?? req.socket.remoteAddress ?? "unknown";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  return `${expandIPv6(address).slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, in lowercase hex without leading zeros. */
function expandIPv6(address: string): string[] {
  // A trailing dotted quad (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) is two groups.
  const hex = address
    .toLowerCase()
    .split("%")[0]!
    .replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a: string, b: string, c: string, d: string) =>
      [((Number(a) << 8) | Number(b)).toString(16), ((Number(c) << 8) | Number(d)).toString(16)].join(":"),
    );
  const [head = "", tail] = hex.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return groups.map((group) => (/^[0-9a-f]+$/.test(group) ? Number.parseInt(group, 16).toString(16) : group));
}
