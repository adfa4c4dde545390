import type { PreflightOptions, PreflightResult } from "@kitt/hardware";

import { loadOptionalConfig } from "./optional-config.js";

export interface PreflightFlags {
  server?: string | undefined;
  port?: number | undefined;
  modelDir?: string | undefined;
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
  return { result, table: formatPreflightTable(result), json: formatPreflightJson(result) };
}
