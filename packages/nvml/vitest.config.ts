import { defineConfig } from "vitest/config";

// One fresh process per test file: a loaded native library (real or fake
// libnvidia-ml) and the NVML singletons live as long as the process, and
// lazy-load.test.ts checks that nothing native is mapped before its first open.
export default defineConfig({
  test: { pool: "forks", isolate: true },
});
