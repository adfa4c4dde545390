/**
 * The native engine commands of the server's Engines page (section 5 of the
 * protocol notes): `install_engine` and `start_engine` run through the job
 * queue (they must not fight a benchmark for the GPU), `stop_engine` is
 * answered at once. The payload is checked here, runtime_config included, so
 * a bad value is refused before anything runs; @kitt/engines does the work.
 */
import { ENGINE_SPECS, isNativeEngine, mapRuntimeConfig, type EngineDriver, type NativeEngineName } from "@kitt/engines";

import { CommandRefused } from "./container-command.js";
import { errorText, type Job } from "./job.js";
import type { JobOutcome } from "./job-types.js";

export const ENGINE_COMMAND_TYPES = ["install_engine", "start_engine", "stop_engine"] as const;
export type EngineCommandType = (typeof ENGINE_COMMAND_TYPES)[number];

export interface EngineCommandSpec {
  kind: EngineCommandType;
  commandId: string;
  testId: string;
  engine: NativeEngineName;
  runtimeConfig: Record<string, unknown>;
  /** start_engine only; "" when the operator gave none. */
  modelPath: string;
}

/** The driver of a native engine (the daemon passes @kitt/engines' createEngineDriver, bound to its state dir). */
export type EngineDrivers = (engine: NativeEngineName) => EngineDriver;

export function isEngineCommandType(type: string): type is EngineCommandType {
  return (ENGINE_COMMAND_TYPES as readonly string[]).includes(type);
}

export function checkEngineCommand(
  kind: EngineCommandType,
  commandId: string,
  testId: string,
  payload: Record<string, unknown>,
  checkModelPath: (value: unknown) => string,
): EngineCommandSpec {
  const engine = payload.engine_name;
  if (typeof engine !== "string" || !isNativeEngine(engine)) {
    throw new CommandRefused(`payload.engine_name must be one of ${Object.keys(ENGINE_SPECS).join(", ")}, got ${JSON.stringify(engine) ?? "nothing"}`);
  }
  const raw = payload.runtime_config ?? {};
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new CommandRefused("payload.runtime_config must be an object");
  const runtimeConfig = raw as Record<string, unknown>;
  const modelPath = kind === "start_engine" && payload.model_path !== undefined && payload.model_path !== null && payload.model_path !== "" ? checkModelPath(payload.model_path) : "";
  if (kind === "start_engine") {
    const spec = ENGINE_SPECS[engine];
    try {
      mapRuntimeConfig(engine, spec.config, runtimeConfig, spec.defaultPort);
    } catch (err) {
      throw new CommandRefused(errorText(err));
    }
  }
  return { kind, commandId, testId, engine, runtimeConfig, modelPath };
}

/** Runs one engine command; the result data is what the original reports (pid/port, version/already_installed). */
export async function runEngineJob(job: Job, spec: EngineCommandSpec, drivers: EngineDrivers | undefined): Promise<JobOutcome> {
  if (drivers === undefined) return { status: "failed", error: "native engines are not available on this agent" };
  const driver = drivers(spec.engine);
  const onLine = (line: string): void => job.log(line);
  try {
    switch (spec.kind) {
      case "install_engine": {
        const r = await driver.install({ onLine, signal: job.abort.signal });
        return { status: "completed", resultData: { success: true, version: r.version, already_installed: r.already_installed, binary_path: r.binary_path } };
      }
      case "start_engine": {
        const r = await driver.start(spec.runtimeConfig, spec.modelPath, { onLine, signal: job.abort.signal });
        return { status: "completed", resultData: { success: true, pid: r.pid, port: r.port, already_running: r.already_running } };
      }
      case "stop_engine": {
        const r = await driver.stop();
        onLine(`${spec.engine} stopped (pid ${r.pid}, ${r.stopped_by})`);
        return { status: "completed", resultData: { success: true, pid: r.pid, stopped_by: r.stopped_by } };
      }
    }
  } catch (err) {
    return { status: "failed", error: job.cancelReason ?? errorText(err) };
  }
}
