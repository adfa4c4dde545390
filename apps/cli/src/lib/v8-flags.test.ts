import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

import { DEFAULT_DAEMON_V8_FLAGS, daemonV8Flags } from "./v8-flags.js";

const DIST = fileURLToPath(new URL("../../dist/lib/v8-flags.js", import.meta.url));

describe("the daemon's V8 flags (KITT_AGENT_V8_FLAGS)", () => {
  it("defaults to no optimizing compilers and the memory-saving heap policy; none keeps V8's own", () => {
    expect(daemonV8Flags({})).toEqual({ flags: ["--no-opt", "--no-maglev", "--no-sparkplug", "--optimize-for-size"] });
    expect(daemonV8Flags({ KITT_AGENT_V8_FLAGS: "none" })).toEqual({ flags: [] });
    expect(daemonV8Flags({ KITT_AGENT_V8_FLAGS: "  " })).toEqual({ flags: [] });
    expect(daemonV8Flags({ KITT_AGENT_V8_FLAGS: " --no-opt  --maglev --optimize_for_size" })).toEqual({ flags: ["--no-opt", "--maglev", "--optimize_for_size"] });
  });

  it("refuses flags V8 reads only at start-up, and anything that is not a flag, in one line", () => {
    for (const bad of ["--jitless", "--max-old-space-size=100", "--max-semi-space-size=1", "opt", "--no-opt extra", "--opt=1", "--expose-gc", "none --no-opt"]) {
      const result = daemonV8Flags({ KITT_AGENT_V8_FLAGS: bad });
      const message = "problem" in result ? result.problem : "";
      expect(message).toMatch(/^KITT_AGENT_V8_FLAGS: "[^"]+" is not a flag the agent sets at run time \(/);
      expect(message).not.toContain("\n");
    }
  });

  // The claim the defaults rest on: set in a running process, V8 honours them.
  it("set at run time, the defaults keep V8 from optimizing a hot function (a real node)", async () => {
    if (!existsSync(DIST)) throw new Error(`${DIST} is missing: build @kitt/cli before its tests`);
    const script = `
      const { applyV8Flags } = await import(${JSON.stringify(DIST)});
      applyV8Flags(JSON.parse(process.argv[1]));
      function f(x) { return x + 1; }
      %PrepareFunctionForOptimization(f); f(1); f(2); %OptimizeFunctionOnNextCall(f); f(3);
      process.stdout.write(String(%GetOptimizationStatus(f)));`;
    const status = async (flags: readonly string[]) =>
      Number((await promisify(execFile)(process.execPath, ["--allow-natives-syntax", "--input-type=module", "-e", script, JSON.stringify(flags)])).stdout);
    const OPTIMIZED = 16; // V8's OptimizationStatus::kOptimized
    expect(await status([]) & OPTIMIZED).toBe(OPTIMIZED);
    expect(await status(DEFAULT_DAEMON_V8_FLAGS) & OPTIMIZED).toBe(0);
  });
});
