import { AGENT_STATUSES, type AgentStatus, type EngineStatus, type GpuTelemetry, type HeartbeatRequest } from "@kitt/protocol";

import type { StatusSnapshot } from "./types.js";

const GPU_NUMBER_FIELDS = ["utilization_pct", "memory_used_gb", "memory_total_gb", "temperature_c", "power_w"] as const;

function finite(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/**
 * The heartbeat body from a status snapshot. The protocol's schema rejects
 * unknown fields and non-numbers, and a rejected body would cost a whole
 * heartbeat, so a bad figure (NaN from a lost GPU, a stray field) is dropped
 * here instead: the server still hears that the agent is alive.
 */
export function buildHeartbeatBody(snapshot: Partial<StatusSnapshot>, uptimeS: number): HeartbeatRequest {
  const status = AGENT_STATUSES.includes(snapshot.status as AgentStatus) ? (snapshot.status as AgentStatus) : "idle";
  const body: HeartbeatRequest = { status, current_task: typeof snapshot.current_task === "string" ? snapshot.current_task : "" };
  const util = finite(snapshot.gpu_utilization_pct);
  if (util !== undefined) body.gpu_utilization_pct = util;
  const mem = finite(snapshot.gpu_memory_used_gb);
  if (mem !== undefined) body.gpu_memory_used_gb = mem;
  const free = finite(snapshot.storage_gb_free);
  if (free !== undefined) body.storage_gb_free = free;
  const uptime = finite(uptimeS);
  if (uptime !== undefined) body.uptime_s = Math.max(0, Math.round(uptime * 10) / 10);
  if (Array.isArray(snapshot.gpus)) body.gpus = snapshot.gpus.flatMap(cleanGpu);
  if (Array.isArray(snapshot.engines)) body.engines = snapshot.engines.flatMap(cleanEngine);
  return body;
}

function cleanGpu(gpu: GpuTelemetry): GpuTelemetry[] {
  if (gpu === null || typeof gpu !== "object") return [];
  if (!Number.isInteger(gpu.index) || gpu.index < 0 || typeof gpu.name !== "string" || typeof gpu.uuid !== "string") return [];
  const out: GpuTelemetry = { index: gpu.index, name: gpu.name, uuid: gpu.uuid };
  for (const key of GPU_NUMBER_FIELDS) {
    const v = finite(gpu[key]);
    if (v !== undefined) out[key] = v;
  }
  return [out];
}

function cleanEngine(engine: EngineStatus): EngineStatus[] {
  if (engine === null || typeof engine !== "object") return [];
  if (typeof engine.engine !== "string" || typeof engine.installed !== "boolean" || typeof engine.running !== "boolean") return [];
  const out: EngineStatus = { engine: engine.engine, installed: engine.installed, running: engine.running };
  if (typeof engine.version === "string") out.version = engine.version;
  if (typeof engine.binary_path === "string") out.binary_path = engine.binary_path;
  return [out];
}
