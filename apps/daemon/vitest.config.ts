import { defineConfig } from "vitest/config";

// Real child processes and a real fake NVML library: one process per file.
export default defineConfig({
  test: { pool: "forks", testTimeout: 30_000, hookTimeout: 30_000 },
});
