import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // --backend auto plans on the CPU whatever GPU the machine has (tests of auto fake their probes).
    env: { OLLM_GPU_PROBE: "0" },
  },
});
