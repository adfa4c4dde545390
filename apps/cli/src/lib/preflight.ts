import type { PreflightCheckId, PreflightOptions, PreflightResult } from "@kitt/hardware";
import { UsageError } from "@kitt/protocol";

import { loadOptionalConfig } from "./optional-config.js";

export interface PreflightFlags {
  server?: string | undefined;
  port?: number | undefined;
  modelDir?: string | undefined;
  /** --insecure: do not verify the server's certificate (as `start --insecure`). */
  insecure?: boolean | undefined;
  /** --skip CHECK, repeatable: check ids not to run. */
  skip?: string[] | undefined;
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
  const { formatPreflightJson, formatPreflightTable, PREFLIGHT_CHECK_IDS, runPreflight } = await import("@kitt/hardware");
  const skip = (flags.skip ?? []).map((id) => {
    if (!(PREFLIGHT_CHECK_IDS as readonly string[]).includes(id)) {
      throw new UsageError(`--skip ${id}: no such check (valid: ${PREFLIGHT_CHECK_IDS.join(", ")})`);
    }
    return id as PreflightCheckId;
  });
  const config = await loadOptionalConfig(configPath);
  const options: PreflightOptions = { skip };
  const server = flags.server ?? config?.server_url;
  if (server !== undefined && server !== "") options.serverUrl = server;
  const port = flags.port ?? config?.port;
  if (port !== undefined) options.port = port;
  const modelDir = flags.modelDir ?? config?.model_storage_dir;
  if (modelDir !== undefined) options.modelDir = modelDir;
  if (config !== undefined) {
    options.benchmarkCommand = config.benchmark_command;
    options.tls = { ...config.tls, insecure: config.insecure };
    // The token is checked for the server agent.yaml names, not for another one given as --server.
    if (config.token !== "" && (flags.server === undefined || flags.server.replace(/\/+$/, "") === config.server_url)) {
      options.agent = { name: config.name, token: config.token };
    }
    if (config.kitt_image !== "") options.kittImage = config.kitt_image;
  }
  if (flags.insecure === true) options.tls = { ...options.tls, insecure: true };
  const result = await runPreflight(options);
  if (config !== undefined) await checkServicePath(result, config.benchmark_command);
  return { result, table: formatPreflightTable(result), json: formatPreflightJson(result) };
}
