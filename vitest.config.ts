import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Some suites spawn the built server; globalSetup builds it first.
    globalSetup: ["test/helpers/global-setup.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Vitest's default, one worker per core less one, ran the files one at a time on a 2-core
    // machine, while many of them mostly wait for the processes they spawn.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // The files of a worker share its module cache instead of each importing the SDK, zod, jose
    // and the server again (about half of the suite's CPU time went to that). This is safe
    // while no module keeps state between calls and no test file mocks a module or leaves fake
    // timers, globals or the environment changed behind it.
    isolate: false,
  },
});
