import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

/** Runs node in a child without blocking this worker (a blocked worker cannot even time out). */
function node(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd: packageDir, encoding: "utf8", timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== "number") reject(err);
      else resolve({ status: err === null ? 0 : (err.code as number), stdout, stderr });
    });
  });
}

describe("generated validators", () => {
  // ajv compiling every schema in the child is ~0.5 s of CPU, deterministic and bounded by the
  // child's own 60 s limit; on two loaded cores that wall time can pass vitest's 5 s default.
  it("are ajv's standalone code for the schemas as they are now", { timeout: 30_000 }, async () => {
    const r = await node(["scripts/gen-validators.mjs", "--check"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("validating every fixture against every schema loads no module of ajv", async () => {
    // The built package, as the daemon loads it (turbo builds a package before its tests). Running
    // src/ instead meant transforming every TypeScript file in the child: ~0.8 s of CPU, which a
    // loaded machine stretched past the test's 5 s.
    const r = await node(["scripts/validate-all-fixtures.mjs"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { accepted: number; refused: number; loaded: string[] };
    // It did validate, through the generated module, and the hook saw what loaded.
    expect(out.accepted).toBeGreaterThan(20);
    expect(out.refused).toBeGreaterThan(100);
    expect(out.loaded.some((url) => url.endsWith("/dist/validators.generated.js"))).toBe(true);
    expect(out.loaded.some((url) => url.includes("/node_modules/js-yaml/"))).toBe(true);
    expect(out.loaded.filter((url) => /[/\\]node_modules[/\\](?:\.pnpm[/\\][^/\\]+[/\\]node_modules[/\\])?ajv[/\\]/.test(url))).toEqual([]);
  });
});
