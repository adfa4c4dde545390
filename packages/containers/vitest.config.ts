import { defineConfig } from "vitest/config";

// Tests talk to a real Docker engine and start real containers: one process per file.
export default defineConfig({
  test: { pool: "forks", testTimeout: 60_000, hookTimeout: 120_000 },
});
