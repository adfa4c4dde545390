import { defineConfig } from "vitest/config";

// One process per test file: the fake libnvidia-ml and @kitt/nvml's
// process-wide handles live as long as the process that loaded them.
export default defineConfig({
  test: { pool: "forks", isolate: true },
});
