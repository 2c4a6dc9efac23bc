/**
 * The server over stdio: start-up, the round trip against a bare server, costs at 10k, 100k and
 * 1M keys, memory over many calls, and create throughput. Both sides of every comparison are
 * measured in alternating rounds, so that drift in the machine hits both alike.
 */
import { readFileSync } from "node:fs";
import { addNote, addRatioRow } from "./report.js";
import {
  BASELINE,
  call,
  connect,
  cursorAt,
  fileWith,
  keysLabel,
  largest,
  latencies,
  procStatusMb,
  sampleKeyIds,
  SERVER,
  throughput,
  type Section,
} from "./context.js";
import { median, percentile, spread } from "./stats.js";

/** Alternating rounds per measure: many short rounds, so drift hits both sides alike. */
const ROUNDS = 15;

export const startup: Section = {
  name: "startup",
  quick: true,
  async run(ctx) {
    const big = largest(ctx);
    const sides = {
      empty: { entry: SERVER, env: ctx.serverEnv(ctx.emptyDb), ms: [] as number[] },
      full: { entry: SERVER, env: ctx.serverEnv(big.path), ms: [] as number[] },
      bare: { entry: BASELINE, env: {}, ms: [] as number[] },
    };
    const rounds = ctx.quick ? 6 : 12;
    for (let i = 0; i < rounds; i++) {
      for (const side of Object.values(sides)) {
        const started = process.hrtime.bigint();
        const server = await connect(side.entry, side.env);
        side.ms.push(Number(process.hrtime.bigint() - started) / 1e6);
        await server.close();
      }
    }
    addRatioRow(`start-up: spawn to initialize answered, ${keysLabel(big.keys)}-key database vs empty (median of ${rounds})`, median(sides.full.ms), median(sides.empty.ms), "ms", 1.2, "≤");
    addRatioRow("start-up: our server (empty database) vs the bare server", median(sides.empty.ms), median(sides.bare.ms), "ms", undefined, "≤");
  },
};

export const stdioRoundTrip: Section = {
  name: "stdio",
  quick: true,
  async run(ctx) {
    const file = fileWith(ctx, 100_000)!;
    const ours = await connect(SERVER, ctx.serverEnv(file.path));
    const bare = await connect(BASELINE, {});
    try {
      const [keyId] = sampleKeyIds(file, 1) as [string];
      const args = () => ({ key_id: keyId });
      await latencies(ours.client, "get_api_key", args, 300);
      await latencies(bare.client, "noop", args, 300);
      const mine: number[] = [];
      const theirs: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        mine.push(...(await latencies(ours.client, "get_api_key", args, 200)));
        theirs.push(...(await latencies(bare.client, "noop", args, 200)));
      }
      addRatioRow("get_api_key round trip over stdio vs the bare server, p50", percentile(mine, 50), percentile(theirs, 50), "µs", 1.3, "≤");
      addRatioRow("get_api_key round trip over stdio vs the bare server, p99", percentile(mine, 99), percentile(theirs, 99), "µs", undefined, "≤");
    } finally {
      await ours.close();
      await bare.close();
    }
  },
};

/**
 * get_api_key, a list page deep in the list, and create_api_key, each p50, on servers over the
 * 10k, 100k and 1M files, in alternating rounds. Every get reads another key, spread over the
 * whole file; the list page is 99 % of the way down; the creates add a few hundred keys to each.
 */
export const scale: Section = {
  name: "scale",
  quick: false,
  async run(ctx) {
    const servers = await Promise.all(
      ctx.files.map(async (file) => ({
        file,
        server: await connect(SERVER, ctx.serverEnv(file.path)),
        keyIds: sampleKeyIds(file, 3000),
        deep: { limit: 20, cursor: cursorAt(file, Math.floor(file.keys * 0.99)) },
        get: [] as number[],
        list: [] as number[],
        create: [] as number[],
      })),
    );
    try {
      let calls = 0;
      const getArgs = (side: (typeof servers)[number]) => () => ({ key_id: side.keyIds[calls++ % side.keyIds.length]! });
      for (const side of servers) {
        await latencies(side.server.client, "get_api_key", getArgs(side), 200);
        await latencies(side.server.client, "list_api_keys", () => side.deep, 50);
      }
      for (let round = 0; round < ROUNDS; round++) {
        for (const side of servers) {
          side.get.push(...(await latencies(side.server.client, "get_api_key", getArgs(side), 100)));
          side.list.push(...(await latencies(side.server.client, "list_api_keys", () => side.deep, 50)));
          side.create.push(...(await latencies(side.server.client, "create_api_key", (i) => ({ name: `scale ${round}-${i}` }), 20)));
        }
      }
    } finally {
      await Promise.all(servers.map((side) => side.server.close()));
    }
    const [small, ...larger] = servers;
    for (const measure of ["get", "list", "create"] as const) {
      const label = { get: "get_api_key, a different key each call", list: "list_api_keys page 99 % deep", create: "create_api_key" }[measure];
      for (const side of larger) {
        addRatioRow(`${label}, p50: ${keysLabel(side.file.keys)} keys vs ${keysLabel(small!.file.keys)}`, percentile(side[measure], 50), percentile(small![measure], 50), "µs", 1.3, "≤");
      }
    }
  },
};

/**
 * Resident memory of a server after 20,000 calls and after 200,000 (15,000 and 45,000 with
 * --quick, past the young generation's growth): nothing should grow with the number of calls.
 * A mix of reads that each touch something different (a key, a plaintext, a page, a missing
 * key), 16 in flight.
 */
export const serverMemory: Section = {
  name: "server-memory",
  quick: true,
  async run(ctx) {
    const file = largest(ctx);
    const [early, total] = ctx.quick ? [15_000, 45_000] : [20_000, 200_000];
    const keyIds = sampleKeyIds(file, 5000);
    const plaintexts = readFileSync(file.keysFile, "utf8").trimEnd().split("\n").filter((_, i) => i % Math.max(1, Math.floor(file.keys / 5000)) === 0);
    const cursors = [0.1, 0.5, 0.9].map((depth) => cursorAt(file, Math.floor(file.keys * depth)));
    const server = await connect(SERVER, ctx.serverEnv(file.path));
    // Resident memory moves by a tenth with garbage collection: each point is the median of
    // eight samples taken over the last tenth of the calls that lead up to it.
    const windows: { calls: number; rss: number[]; hwm: number }[] = [];
    try {
      const one = async (i: number) => {
        switch (i % 5) {
          case 0:
          case 1:
            return call(server.client, "get_api_key", { key_id: keyIds[i % keyIds.length]! });
          case 2:
            return call(server.client, "verify_api_key", { api_key: plaintexts[i % plaintexts.length]! });
          case 3:
            return call(server.client, "list_api_keys", { limit: 20, cursor: cursors[i % cursors.length]! });
          default: {
            // A missing key: the error path, logged like every refusal.
            const result = await server.client.callTool({ name: "get_api_key", arguments: { key_id: "key_00000000000000000000" } });
            if (!result.isError) throw new Error("a missing key was found");
          }
        }
      };
      let done = 0;
      const run = async (count: number) => {
        const from = done;
        await throughput((i) => one(from + i), count, 16);
        done += count;
      };
      for (const until of [early, total]) {
        const window = { calls: until, rss: [] as number[], hwm: 0 };
        await run(until * 0.9 - done);
        for (let sample = 0; sample < 8; sample++) {
          await run((until * 0.1) / 8);
          window.rss.push(procStatusMb(server.pid, "VmRSS"));
        }
        window.hwm = procStatusMb(server.pid, "VmHWM");
        windows.push(window);
      }
    } finally {
      await server.close();
    }
    const [after, later] = windows as [(typeof windows)[number], (typeof windows)[number]];
    const calls = (window: typeof after) => window.calls.toLocaleString("en");
    addRatioRow(`server resident memory after ${calls(later)} calls vs after ${calls(after)} (medians of 8 samples)`, median(later.rss), median(after.rss), "MB", 1.1, "≤");
    addRatioRow(`server peak resident memory (VmHWM) after ${calls(later)} calls vs after ${calls(after)}`, later.hwm, after.hwm, "MB", undefined, "≤");
  },
};

/** create_api_key calls per second, 16 in flight, against no-op calls: reported, no longer a goal. */
export const createThroughput: Section = {
  name: "create",
  quick: true,
  async run(ctx) {
    const file = fileWith(ctx, 100_000)!;
    const ours = await connect(SERVER, ctx.serverEnv(file.path));
    const bare = await connect(BASELINE, {});
    const mine: number[] = [];
    const theirs: number[] = [];
    try {
      const [keyId] = sampleKeyIds(file, 1) as [string];
      for (let round = 0; round < (ctx.quick ? 3 : 7); round++) {
        mine.push(await throughput((i) => call(ours.client, "create_api_key", { name: `bench ${round}-${i}` }), 1000, 16));
        theirs.push(await throughput(() => call(bare.client, "noop", { key_id: keyId }), 1000, 16));
      }
    } finally {
      await ours.close();
      await bare.close();
    }
    addRatioRow("create_api_key calls/s, 16 in flight, vs the bare server's no-op", median(mine), median(theirs), "/s", undefined, "≥");
    addNote(`create_api_key: ${spread(mine.map((value, i) => value / theirs[i]!))} over the rounds (reported; create throughput is no longer a goal).`);
  },
};
