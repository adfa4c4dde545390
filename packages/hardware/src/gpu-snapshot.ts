import type { Nvml, NvmlDevice } from "@kitt/nvml";
import type { GpuTelemetry, Logger } from "@kitt/protocol";
import { silentLogger } from "@kitt/protocol";
import { openNvml, type NvmlAccess } from "./gpu-detect.js";
import { createHostProbe, type HostProbe } from "./host.js";
import { querySmi, smiNumber } from "./nvidia-smi.js";
import { gib2 } from "./units.js";

/** One GPU in a heartbeat's `gpus` array (the wire type); an absent field is one the GPU does not report. */
export type { GpuTelemetry };

/**
 * Spreads into a heartbeat body as is. The two legacy fields come from GPU 0,
 * as the original agent sent them; they are absent without a GPU 0 or where
 * it does not report them (MIG: no utilization; unified memory: no memory).
 */
export interface GpuSnapshot {
  gpus: GpuTelemetry[];
  gpu_utilization_pct?: number;
  gpu_memory_used_gb?: number;
}

export interface GpuSamplerOptions {
  /** NVML library options, or false to never use NVML. */
  nvml?: NvmlAccess;
  /**
   * Spawn nvidia-smi when NVML is unusable. Off by default: one spawn costs
   * about what thousands of NVML reads cost (see bench/telemetry).
   */
  nvidiaSmi?: boolean;
  /** How long an nvidia-smi answer, or failure, is reused. Default 10 s. */
  smiCacheMs?: number;
  /** Limit for one nvidia-smi run. Default: the host's command timeout. */
  smiTimeoutMs?: number;
  /** How long to wait before trying NVML again once it was unusable. Default 60 s. */
  nvmlRetryMs?: number;
  host?: HostProbe;
  /** Milliseconds, monotonic. */
  now?: () => number;
  logger?: Logger;
}

const SMI_FIELDS = [
  "index",
  "name",
  "uuid",
  "utilization.gpu",
  "memory.used",
  "memory.total",
  "temperature.gpu",
  "power.draw",
] as const;
const MIB = 1024 * 1024;

function withLegacy(gpus: GpuTelemetry[]): GpuSnapshot {
  const gpu0 = gpus.find((gpu) => gpu.index === 0);
  const snapshot: GpuSnapshot = { gpus };
  if (gpu0?.utilization_pct !== undefined) snapshot.gpu_utilization_pct = gpu0.utilization_pct;
  if (gpu0?.memory_used_gb !== undefined) snapshot.gpu_memory_used_gb = gpu0.memory_used_gb;
  return snapshot;
}

function put<K extends keyof GpuTelemetry>(target: GpuTelemetry, key: K, value: GpuTelemetry[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

/**
 * Live GPU telemetry, cheap enough for every heartbeat or every second: it
 * keeps the process-wide NVML handle, reads names and UUIDs once, and spawns
 * nothing while NVML works. Hold one sampler per process.
 */
export class GpuSampler {
  private nvml: Nvml | undefined;
  private nvmlTriedAt = Number.NEGATIVE_INFINITY;
  private readonly ids = new Map<number, { name: string; uuid: string }>();
  /** The device count the cached ids belong to: a change (hot-plug, MIG reconfig) drops them. */
  private idsCount = -1;
  private smiCache: { at: number; snapshot: GpuSnapshot } | undefined;
  private smiRunning: Promise<GpuSnapshot> | undefined;
  private readonly host: HostProbe;
  private readonly now: () => number;
  private readonly logger: Logger;

  constructor(private readonly options: GpuSamplerOptions = {}) {
    this.host = options.host ?? createHostProbe();
    this.now = options.now ?? (() => performance.now());
    this.logger = options.logger ?? silentLogger;
  }

  /** Where the last snapshot came from. */
  source: "nvml" | "nvidia-smi" | "none" = "none";

  async snapshot(): Promise<GpuSnapshot> {
    const fromNvml = this.sampleNvml();
    if (fromNvml !== undefined) {
      this.source = "nvml";
      return fromNvml;
    }
    if (this.options.nvidiaSmi !== true) {
      this.source = "none";
      return { gpus: [] };
    }
    const fromSmi = await this.sampleSmi();
    this.source = fromSmi.gpus.length > 0 ? "nvidia-smi" : "none";
    return fromSmi;
  }

  /** NVML only, synchronous; undefined when NVML is unusable. */
  sampleNvml(): GpuSnapshot | undefined {
    const nvml = this.currentNvml();
    if (nvml === undefined) return undefined;
    let count: number;
    try {
      count = nvml.deviceCount();
    } catch (error) {
      this.dropNvml(error);
      return undefined;
    }
    if (count !== this.idsCount) {
      this.ids.clear();
      this.idsCount = count;
    }
    const gpus: GpuTelemetry[] = [];
    for (let index = 0; index < count; index++) gpus.push(this.readDevice(nvml, index));
    return withLegacy(gpus);
  }

  private currentNvml(): Nvml | undefined {
    if (this.nvml !== undefined) return this.nvml;
    const retryMs = this.options.nvmlRetryMs ?? 60_000;
    if (this.now() - this.nvmlTriedAt < retryMs) return undefined;
    this.nvmlTriedAt = this.now();
    const { nvml, note } = openNvml(this.options.nvml ?? {}, this.host);
    if (note !== undefined) this.logger.debug(`gpu telemetry: ${note}`);
    this.nvml = nvml;
    return nvml;
  }

  private dropNvml(error: unknown): void {
    this.logger.warn("gpu telemetry: NVML stopped answering", { error: String(error) });
    this.nvml = undefined;
    this.nvmlTriedAt = this.now();
    this.ids.clear();
    this.idsCount = -1;
  }

  private readDevice(nvml: Nvml, index: number): GpuTelemetry {
    let device: NvmlDevice;
    try {
      device = nvml.device(index);
    } catch (error) {
      this.logger.debug(`gpu telemetry: GPU ${index}: ${String(error)}`);
      return { index, name: "", uuid: "" };
    }
    // One failing metric (a GPU gone bad mid-read) must not hide the others.
    const read = <T>(what: string, fn: () => T | undefined): T | undefined => {
      try {
        return fn();
      } catch (error) {
        this.logger.debug(`gpu telemetry: GPU ${index} ${what}: ${String(error)}`);
        return undefined;
      }
    };
    let ids = this.ids.get(index);
    if (ids === undefined) {
      const name = read("name", () => device.name());
      const uuid = read("uuid", () => device.uuid());
      ids = { name: name ?? "", uuid: uuid ?? "" };
      if (name !== undefined && uuid !== undefined) this.ids.set(index, ids);
    }
    const gpu: GpuTelemetry = { index, name: ids.name, uuid: ids.uuid };
    const memory = read("memory", () => device.memoryInfo());
    put(gpu, "utilization_pct", read("utilization", () => device.utilization())?.gpu);
    if (memory !== undefined && memory.total > 0) {
      gpu.memory_used_gb = gib2(memory.used);
      gpu.memory_total_gb = gib2(memory.total);
    }
    put(gpu, "temperature_c", read("temperature", () => device.temperatureC()));
    const power = read("power", () => device.powerW());
    if (power !== undefined) gpu.power_w = Math.round(power * 10) / 10;
    return gpu;
  }

  private async sampleSmi(): Promise<GpuSnapshot> {
    const cacheMs = this.options.smiCacheMs ?? 10_000;
    if (this.smiCache !== undefined && this.now() - this.smiCache.at < cacheMs) return this.smiCache.snapshot;
    // Concurrent callers share one spawn.
    this.smiRunning ??= this.runSmi().finally(() => {
      this.smiRunning = undefined;
    });
    return this.smiRunning;
  }

  private async runSmi(): Promise<GpuSnapshot> {
    const query = await querySmi(this.host, SMI_FIELDS, { timeoutMs: this.options.smiTimeoutMs });
    let snapshot: GpuSnapshot = { gpus: [] };
    if (query.ok) {
      snapshot = withLegacy(
        query.rows.map((row, i) => {
          const gpu: GpuTelemetry = { index: smiNumber(row.index) ?? i, name: row.name ?? "", uuid: row.uuid ?? "" };
          put(gpu, "utilization_pct", smiNumber(row["utilization.gpu"]));
          const used = smiNumber(row["memory.used"]);
          const total = smiNumber(row["memory.total"]);
          if (used !== undefined && total !== undefined && total > 0) {
            gpu.memory_used_gb = gib2(used * MIB);
            gpu.memory_total_gb = gib2(total * MIB);
          }
          put(gpu, "temperature_c", smiNumber(row["temperature.gpu"]));
          const power = smiNumber(row["power.draw"]);
          if (power !== undefined) gpu.power_w = Math.round(power * 10) / 10;
          return gpu;
        }),
      );
    } else {
      this.logger.debug(`gpu telemetry: ${query.message}`);
    }
    // Failures are cached too: a wedged driver must not cost a spawn per heartbeat.
    this.smiCache = { at: this.now(), snapshot };
    return snapshot;
  }
}

let shared: GpuSampler | undefined;

/**
 * A snapshot from the process-wide sampler (NVML only, no spawning). For
 * nvidia-smi fallback, other library paths or injected clocks, hold a GpuSampler.
 */
export function gpuSnapshot(): Promise<GpuSnapshot> {
  shared ??= new GpuSampler();
  return shared.snapshot();
}
