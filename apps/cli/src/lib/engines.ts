import { randomBytes } from "node:crypto";

import type { AgentConfig } from "@kitt/protocol";
import { KittError, UsageError } from "@kitt/protocol";

import { createEngineDriver, ENGINE_NAMES, ENGINE_SPECS, EngineError, isNativeEngine, mapRuntimeConfig, type NativeEngineName } from "@kitt/engines";

import { daemonRequest, DaemonNotRunningError, errorText, type DaemonConfig } from "./daemon-client.js";

type EngineName = NativeEngineName;

/** One engine as GET /api/engines and the driver's status() give it. */
export interface EngineRow {
  engine: string;
  installed: boolean;
  running: boolean;
  version?: string;
  binary_path?: string;
  pid?: number;
  port?: number;
  ready?: boolean;
  managed_by?: string;
  log_file?: string;
}

export interface EngineList {
  /** `daemon`: the running agent answered; `probe`: no agent runs, this command probed the engines itself. */
  source: "daemon" | "probe";
  engines: EngineRow[];
}

/** The engine command's outcome as the job's log stream ended it. */
export interface EngineJobOutcome {
  command_id: string;
  engine: EngineName;
  type: "start_engine" | "install_engine";
  status: string;
  error?: string;
  result?: Record<string, unknown>;
}

export interface EngineStopOutcome {
  engine: EngineName;
  /** `daemon`: the running agent stopped it; `direct`: no agent runs, this command did, from the agent's record. */
  via: "daemon" | "direct";
  success: boolean;
  error: string;
  pid?: number;
  stopped_by?: string;
}

type EngineConfig = DaemonConfig & Pick<AgentConfig, "state_dir">;

/** NAME as given on the command line, or a one-line usage error. */
export function checkEngineName(name: string): EngineName {
  if (isNativeEngine(name)) return name;
  throw new UsageError(`unknown engine ${JSON.stringify(name.slice(0, 80))}: expected one of ${ENGINE_NAMES.join(", ")}`);
}

/**
 * runtime_config from `--port` and `--set key=value` flags, checked the way
 * the agent checks it (the key named in one line), so a bad value fails here
 * and not after a trip through the job queue. Values stay strings: the agent
 * reads numeric strings and true/false as a web form sends them.
 */
export function startConfig(engine: EngineName, flags: { port?: number | undefined; set?: readonly string[] | undefined }): Record<string, string | number> {
  const config: Record<string, string | number> = {};
  for (const pair of flags.set ?? []) {
    const eq = pair.indexOf("=");
    const key = eq < 0 ? "" : pair.slice(0, eq).trim();
    if (eq < 0 || key === "") throw new UsageError(`--set ${JSON.stringify(pair.slice(0, 80))}: expected key=value (e.g. --set n_ctx=4096)`);
    if (Object.keys(config).some((k) => k.toLowerCase() === key.toLowerCase())) throw new UsageError(`--set ${key} given twice`);
    config[key] = pair.slice(eq + 1).trim();
  }
  if (flags.port !== undefined) {
    if (Object.keys(config).some((k) => k.toLowerCase() === "port")) throw new UsageError("give the port once: --port or --set port=..., not both");
    config.port = flags.port;
  }
  const spec = ENGINE_SPECS[engine];
  mapRuntimeConfig(engine, spec.config, config, spec.defaultPort);
  return config;
}

/** The drivers this command uses when no agent runs: the agent's state dir, so its records are the ones read. */
function directDriver(config: Pick<AgentConfig, "state_dir">, name: EngineName) {
  return createEngineDriver(name, { stateDir: config.state_dir });
}

/**
 * Every engine's status: from the running agent (GET /api/engines), else
 * probed here (the same probes, the agent's records under its state dir).
 */
export async function listEngines(config: EngineConfig): Promise<EngineList> {
  try {
    // Probes can wait on `import vllm` (bounded at 30 s by the agent).
    const res = await daemonRequest(config, "GET", "/api/engines", { timeoutMs: 45_000 });
    const engines = (res.body as { engines?: unknown }).engines;
    if (res.status !== 200 || !Array.isArray(engines)) {
      throw new KittError(`GET /api/engines answered HTTP ${res.status}: ${errorText(res.body)}`, { code: "DAEMON_REQUEST" });
    }
    return { source: "daemon", engines: engines as EngineRow[] };
  } catch (err) {
    if (!(err instanceof DaemonNotRunningError)) throw err;
  }
  const engines = await Promise.all(ENGINE_NAMES.map((name) => directDriver(config, name).status()));
  return { source: "probe", engines };
}

/** A command id of this CLI's own: `cli-<type>-<engine>-<hex>` (the daemon takes 1-64 safe characters). */
export function engineCommandId(type: string, engine: EngineName): string {
  return `cli-${type.replace("_engine", "")}-${engine}-${randomBytes(6).toString("hex")}`;
}

export interface FollowOptions {
  onLine: (line: string) => void;
  onNotice: (text: string) => void;
}

/**
 * Queues start_engine or install_engine on the running agent (POST
 * /api/commands, as the server queues them: they wait behind benchmarks in the
 * one job queue) and follows the job's log until it ends. Without an agent
 * this is an error saying so: an engine started behind the agent's back would
 * race its next benchmark for the GPU.
 */
export async function runEngineJob(
  config: EngineConfig,
  type: "start_engine" | "install_engine",
  engine: EngineName,
  payload: { runtime_config?: Record<string, unknown>; model_path?: string },
  follow: FollowOptions,
): Promise<EngineJobOutcome> {
  const commandId = engineCommandId(type, engine);
  let res;
  try {
    res = await daemonRequest(config, "POST", "/api/commands", {
      body: { command_id: commandId, type, payload: { engine_name: engine, runtime_config: {}, ...payload } },
      timeoutMs: 15_000,
    });
  } catch (err) {
    if (err instanceof DaemonNotRunningError) {
      throw new KittError(`${err.message}: ${type} runs through the agent's job queue; start the agent first (kitt-agent start, or the service)`, {
        code: "DAEMON_NOT_RUNNING",
        cause: err,
      });
    }
    throw err;
  }
  if (res.status >= 400 && res.status < 500 && res.status !== 401) {
    throw new UsageError(`the agent refused ${type}: ${errorText(res.body)}`);
  }
  if (res.status !== 202) throw new KittError(`the agent refused ${type} (HTTP ${res.status}): ${errorText(res.body)}`, { code: "DAEMON_REQUEST" });
  follow.onNotice(`${type} ${engine} queued on the agent as ${commandId}; following its log (Ctrl-C stops following, not the job)`);

  const { streamJobLogs } = await import("./logs.js");
  const transport = (await import("./daemon-transport.js")).daemonTransport(config);
  const streamed = await streamJobLogs({
    baseUrl: transport.baseUrl,
    fetch: transport.fetch,
    token: config.token,
    commandId,
    follow: true,
    onLine: follow.onLine,
    onNotice: follow.onNotice,
  });
  // The SSE `end` event carries the result report's data beside the outcome.
  const end = streamed.end as { status: string; error?: string; result_data?: Record<string, unknown> } | undefined;
  return {
    command_id: commandId,
    engine,
    type,
    status: end?.status ?? "unknown",
    ...(end?.error !== undefined && end.error !== "" ? { error: end.error } : {}),
    ...(end?.result_data !== undefined ? { result: end.result_data } : {}),
  };
}

/**
 * Stops an engine: through the running agent (stop_engine, answered on the
 * call), else directly from the agent's record under its state dir (engines
 * outlive the agent, so stopping one while the agent is down must work; the
 * record's start time keeps a reused pid from being signalled).
 */
export async function stopEngine(config: EngineConfig, engine: EngineName): Promise<EngineStopOutcome> {
  try {
    // TERM, then KILL after the agent's 10 s grace.
    const res = await daemonRequest(config, "POST", "/api/commands", {
      body: { command_id: engineCommandId("stop_engine", engine), type: "stop_engine", payload: { engine_name: engine } },
      timeoutMs: 30_000,
    });
    const body = res.body as { success?: unknown; error?: unknown; pid?: unknown; stopped_by?: unknown };
    if (res.status !== 200 || typeof body.success !== "boolean") {
      throw new KittError(`the agent refused stop_engine (HTTP ${res.status}): ${errorText(res.body)}`, { code: "DAEMON_REQUEST" });
    }
    return {
      engine,
      via: "daemon",
      success: body.success,
      error: typeof body.error === "string" ? body.error : "",
      ...(typeof body.pid === "number" ? { pid: body.pid } : {}),
      ...(typeof body.stopped_by === "string" ? { stopped_by: body.stopped_by } : {}),
    };
  } catch (err) {
    if (!(err instanceof DaemonNotRunningError)) throw err;
  }
  try {
    const stopped = await directDriver(config, engine).stop();
    return { engine, via: "direct", success: true, error: "", pid: stopped.pid, stopped_by: stopped.stopped_by };
  } catch (err) {
    if (err instanceof EngineError) return { engine, via: "direct", success: false, error: err.message };
    throw err;
  }
}

/** The list as a table: one row per engine. */
export function engineRows(list: EngineList): string[][] {
  return list.engines.map((e) => [
    e.engine,
    e.installed ? "yes" : "no",
    e.running ? (e.ready === false ? "yes (not ready)" : "yes") : "no",
    e.running && e.pid !== undefined && e.pid > 0 ? String(e.pid) : "-",
    e.running && e.port !== undefined ? String(e.port) : "-",
    e.version !== undefined && e.version !== "" ? e.version : "-",
    e.binary_path !== undefined && e.binary_path !== "" ? e.binary_path : "-",
  ]);
}
