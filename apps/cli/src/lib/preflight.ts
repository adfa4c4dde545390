import type { PreflightOptions, PreflightResult } from "@kitt/hardware";

import { loadOptionalConfig } from "./optional-config.js";

export interface PreflightFlags {
  server?: string | undefined;
  port?: number | undefined;
  modelDir?: string | undefined;
}

/**
 * The benchmark check looked on this shell's PATH; the service gets the
 * unit's PATH (or, not installed yet, the one install would write): a CLI
 * found here but not there is a warning.
 */
async function checkServicePath(result: PreflightResult, command: string): Promise<void> {
  const check = result.checks.find((c) => c.id === "benchmark-cli");
  if (check?.status !== "pass") return;
  const { serviceDeps, unitPath } = await import("./service.js");
  const { servicePathProblem } = await import("./service-path-check.js");
  const problem = await servicePathProblem(command, unitPath(serviceDeps()), process.env);
  if (problem === undefined) return;
  check.status = check.required ? "fail" : "warn";
  check.detail = `${check.detail}, but ${problem}`;
  if (check.required) result.ok = false;
}

/** Flags over agent.yaml (when present) over the library's defaults. */
export async function preflightFromConfig(
  configPath: string | undefined,
  flags: PreflightFlags,
): Promise<{ result: PreflightResult; table: string; json: string }> {
  const config = await loadOptionalConfig(configPath);
  const { formatPreflightJson, formatPreflightTable, runPreflight } = await import("@kitt/hardware");
  const options: PreflightOptions = {};
  const server = flags.server ?? config?.server_url;
  if (server !== undefined && server !== "") options.serverUrl = server;
  const port = flags.port ?? config?.port;
  if (port !== undefined) options.port = port;
  const modelDir = flags.modelDir ?? config?.model_storage_dir;
  if (modelDir !== undefined) options.modelDir = modelDir;
  if (config !== undefined) {
    options.benchmarkCommand = config.benchmark_command;
    options.tls = { ...config.tls, insecure: config.insecure };
    if (config.kitt_image !== "") options.kittImage = config.kitt_image;
  }
  const result = await runPreflight(options);
  if (config !== undefined) await checkServicePath(result, config.benchmark_command);
  return { result, table: formatPreflightTable(result), json: formatPreflightJson(result) };
}
