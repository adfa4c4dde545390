import { defineConfig } from "vitest/config";

export default defineConfig({
  // Tests run the loop against the fake KITT server over real HTTP: beside another suite on a
  // loaded 2-core box, vitest's 5 s default is not enough. Waits inside the tests are bounded
  // on their own and name what they waited for.
  test: { testTimeout: 30_000 },
});
