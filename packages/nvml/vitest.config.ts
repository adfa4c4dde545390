import { defineConfig } from "vitest/config";

// Each test file gets its own process: libnvidia-ml (real or fake) and the
// NVML singletons are per process, and a native library cannot be unloaded
// from a worker thread safely.
export default defineConfig({
  test: { pool: "forks" },
});
