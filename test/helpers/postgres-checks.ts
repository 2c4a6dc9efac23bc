import { runCommand, tempDir, type CommandRun } from "./spawn.js";

/** `api-keys-mcp audit verify --database-url <url>`, run as an operator would: the built CLI, spawned. */
export async function auditVerify(url: string): Promise<CommandRun> {
  const home = tempDir();
  try {
    return await runCommand(["audit", "verify", "--database-url", url], {}, home.path);
  } finally {
    home.remove();
  }
}

/**
 * Resolves once `check` resolves true, asking again as each answer comes back (25 ms apart);
 * rejects after `timeoutMs`, naming `what`. A bound on waiting for a condition, never a sleep
 * standing in for one.
 */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() >= deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * `work` over every item, at most `limit` at a time, in order of start: a client with a bounded
 * number of calls in flight. Resolves with the results in the items' order.
 */
export async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}
