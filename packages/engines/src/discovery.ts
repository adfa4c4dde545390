import { join } from "node:path";
import { findExecutable } from "@kitt/protocol";
import type { EngineSpec } from "./engine-specs.js";
import type { RunStep } from "./run-step.js";

/** What discover() finds; the heartbeat's engine fields. */
export interface EngineDiscovery {
  engine: string;
  installed: boolean;
  /** The binary, or `<python> -m vllm` for vLLM (as the original reports it). */
  binary_path: string;
  version: string;
}

export interface Located extends EngineDiscovery {
  /** What to exec: the binary, or the python that imports the module. */
  executable: string;
}

export interface DiscoveryContext {
  env: NodeJS.ProcessEnv;
  runStep: RunStep;
  /** Where the agent installs binaries it builds (searched after PATH). */
  binDir: string;
  /** Pythons tried in order for a Python-module engine. */
  pythons: readonly string[];
  probeTimeoutMs: number;
  /** `import vllm` can take tens of seconds on a cold cache. */
  importTimeoutMs: number;
}

/** Finds the engine and asks its version; every probe is bounded, and a probe that fails means "not installed". */
export async function locateEngine(spec: EngineSpec, ctx: DiscoveryContext): Promise<Located> {
  const none: Located = { engine: spec.name, installed: false, binary_path: "", version: "", executable: "" };
  const locate = spec.locate;
  if ("binary" in locate) {
    const path =
      (await findExecutable(locate.binary, ctx.env)) ?? (await findExecutable(join(ctx.binDir, locate.binary), ctx.env));
    if (path === undefined) return none;
    const result = await ctx.runStep(path, ["--version"], { timeoutMs: ctx.probeTimeoutMs, env: ctx.env });
    const version = result.code === 0 ? spec.parseVersion(result.output) : "";
    return { engine: spec.name, installed: true, binary_path: path, version, executable: path };
  }
  const code = `import ${locate.pythonModule}; print(${locate.pythonModule}.__version__)`;
  for (const python of ctx.pythons) {
    const path = await findExecutable(python, ctx.env);
    if (path === undefined) continue;
    const result = await ctx.runStep(path, ["-c", code], { timeoutMs: ctx.importTimeoutMs, env: ctx.env });
    if (result.code !== 0) continue;
    return {
      engine: spec.name,
      installed: true,
      binary_path: `${path} -m ${locate.pythonModule}`,
      version: spec.parseVersion(result.output),
      executable: path,
    };
  }
  return none;
}
