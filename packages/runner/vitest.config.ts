import { defineConfig } from "vitest/config";

// Tests spawn real benchmark processes (and kill their process groups):
// separate processes keep a stray child from outliving its test file's worker.
export default defineConfig({
  test: { pool: "forks", testTimeout: 20_000 },
});
