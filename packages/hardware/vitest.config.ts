import { defineConfig } from "vitest/config";

// One process per test file: the fake libnvidia-ml and @kitt/nvml's
// process-wide handles live as long as the process that loaded them.
export default defineConfig({
  // Tests start real processes (fake nvidia-smi, the real Docker engine, child
  // loaders of the fake library): beside another suite on 2 cores, 5 s is not enough.
  test: { pool: "forks", isolate: true, testTimeout: 30_000 },
});
