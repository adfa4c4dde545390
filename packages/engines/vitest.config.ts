import { defineConfig } from "vitest/config";

export default defineConfig({
  // Tests copy real files and start child processes; a loaded 2-core CI box needs headroom.
  test: { testTimeout: 30_000 },
});
