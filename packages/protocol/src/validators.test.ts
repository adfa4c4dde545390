import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

function node(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd: packageDir, encoding: "utf8", timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("generated validators", () => {
  it("are ajv's standalone code for the schemas as they are now", () => {
    const r = node(["scripts/gen-validators.mjs", "--check"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("validating every fixture against every schema loads no module of ajv", () => {
    // The whole package from its sources: some files use syntax that needs transforming, not only stripping.
    const r = node([
      "--experimental-transform-types",
      "--disable-warning=ExperimentalWarning",
      "--import",
      "./scripts/ts-source-hooks.mjs",
      "src/test-validate-child.ts",
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { accepted: number; refused: number; loaded: string[] };
    // It did validate, through the generated module, and the hook saw what loaded.
    expect(out.accepted).toBeGreaterThan(20);
    expect(out.refused).toBeGreaterThan(100);
    expect(out.loaded.some((url) => url.endsWith("/src/validators.generated.ts"))).toBe(true);
    expect(out.loaded.some((url) => url.includes("/node_modules/js-yaml/"))).toBe(true);
    expect(out.loaded.filter((url) => /[/\\]node_modules[/\\](?:\.pnpm[/\\][^/\\]+[/\\]node_modules[/\\])?ajv[/\\]/.test(url))).toEqual([]);
  });
});
