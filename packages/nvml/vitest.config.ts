import { defineConfig } from "vitest/config";

// One fresh process per test file: a loaded native library (real or fake
// libnvidia-ml) and the NVML singletons live as long as the process, and
// lazy-load.test.ts checks that nothing native is mapped before its first open.
export default defineConfig({
  // Tests start real processes (fake nvidia-smi, the real Docker engine, child
  // loaders of the fake library): beside another suite on 2 cores, 5 s is not enough.
  test: { pool: "forks", isolate: true, testTimeout: 30_000 },
});
