import { defineConfig } from "vitest/config";

// The tests spawn the built CLI (a Node start each) and load a fake NVML
// library in children only; generous timeouts keep a loaded 2-core box green.
export default defineConfig({
  test: {
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
