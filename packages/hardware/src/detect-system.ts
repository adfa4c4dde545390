import type { Logger, RegisterRequest } from "@kitt/protocol";
import { silentLogger } from "@kitt/protocol";
import { detectCpu, dockerArch } from "./cpu.js";
import { detectNvccVersion } from "./cuda.js";
import { detectEnvironmentType, type EnvironmentType } from "./environment.js";
import { buildFingerprint } from "./fingerprint.js";
import {
  detectGpusViaNvml,
  detectGpusViaSmi,
  type DetectedGpu,
  type GpuSource,
  type NvmlAccess,
} from "./gpu-detect.js";
import { createHostProbe, type HostProbe } from "./host.js";
import { detectRamBytes, detectRamType, originalRamType, ramGb } from "./memory.js";
import { detectStorage, type StorageInfo } from "./storage.js";
import { detectStorageIdentity } from "./storage-identity.js";
import { GIB } from "./units.js";

/** The `hardware_details` object, in the field order of kitt-protocol.md. Unknown: "" or 0. */
export interface HardwareDetails {
  gpu_model: string;
  gpu_vram_gb: number;
  gpu_count: number;
  gpu_compute_capability: string;
  cpu_model: string;
  cpu_arch: string;
  cpu_cores: number;
  cpu_threads: number;
  ram_gb: number;
  ram_type: string;
  storage_brand: string;
  storage_model: string;
  storage_type: string;
  cuda_version: string;
  driver_version: string;
  os: string;
  kernel: string;
  environment_type: EnvironmentType;
  fingerprint: string;
}

/** The hardware part of the register body, ready to send (`hardware_details` is a JSON string). */
export type RegistrationHardware = Required<
  Pick<
    RegisterRequest,
    | "hostname"
    | "gpu_info"
    | "gpu_count"
    | "cpu_info"
    | "cpu_arch"
    | "ram_gb"
    | "environment_type"
    | "fingerprint"
    | "hardware_details"
  >
>;

export interface SystemInfo extends RegistrationHardware {
  /** The same as `hardware_details`, as an object. */
  details: HardwareDetails;
  gpus: DetectedGpu[];
  gpuSource: GpuSource;
  /** The CUDA version the driver supports (NVML), beside `cuda_version` (nvcc); "" when unknown. */
  cudaDriverVersion: string;
  /** Physical CPU cores (distinct core ids); `cpu_cores` is the logical count, as the original reports it. */
  physicalCores: number;
  /** True when the GPU reports no memory of its own and system RAM stands in (DGX Spark GB10). */
  unifiedMemory: boolean;
  storage: StorageInfo;
  /** Why a source was skipped or failed: for `--debug` output, never for the wire. */
  notes: string[];
}

export interface DetectOptions {
  /** The machine to look at; the real one by default. */
  host?: HostProbe;
  /** NVML library options, or false to skip NVML. */
  nvml?: NvmlAccess;
  logger?: Logger;
}

/**
 * `gpu_vram_gb` as the original agent computes it: NVML's total rounded to
 * the nearest GiB (H200: 143771 MiB = 140.4 GiB -> 140); nvidia-smi's MiB
 * integer-divided by 1024.
 */
export function vramGb(bytes: number, source: GpuSource = "nvml"): number {
  return source === "nvidia-smi" ? Math.floor(bytes / GIB) : Math.round(bytes / GIB);
}

/** `os` as Python's `platform.system()-platform.release()` names it: "Linux-6.8.0-45-generic". */
export function osString(type: string, release: string): string {
  return `${type === "Windows_NT" ? "Windows" : type}-${release}`;
}

/** "NVIDIA H200 141GB"; the bare model when VRAM is unknown; "" without GPU. */
export function gpuInfoString(model: string, vram: number): string {
  if (model === "") return "";
  return vram > 0 ? `${model} ${vram}GB` : model;
}

/** `cuda_version`: the toolkit's `nvcc --version`, as the original reports it (not the driver's CUDA). */
async function cudaVersion(host: HostProbe, notes: string[]): Promise<string> {
  const nvcc = await detectNvccVersion(host);
  if (nvcc.note !== undefined) notes.push(`cuda: ${nvcc.note}`);
  return nvcc.version;
}

/**
 * Everything the register call needs about this machine. Probes run
 * concurrently and every spawned one is bounded by `host.commandTimeoutMs`,
 * so a wedged driver delays detection by one timeout, not forever.
 */
export async function detectSystem(options: DetectOptions = {}): Promise<SystemInfo> {
  const host = options.host ?? createHostProbe();
  const logger = options.logger ?? silentLogger;
  const notes: string[] = [];

  // NVML is synchronous and answers in milliseconds; knowing its answer first
  // tells which subprocesses (nvidia-smi, nvcc) are needed at all.
  const nvmlGpu = detectGpusViaNvml(host, options.nvml ?? {}, notes);
  const [environment, cpu, ramBytes, detectedRamType, storage, storageIdentity, gpu, cuda] = await Promise.all([
    detectEnvironmentType(host),
    detectCpu(host),
    detectRamBytes(host),
    detectRamType(host),
    detectStorage(host),
    detectStorageIdentity(host),
    nvmlGpu === undefined ? detectGpusViaSmi(host, notes) : Promise.resolve(nvmlGpu),
    cudaVersion(host, notes),
  ]);

  const ram = ramGb(ramBytes);
  const first = gpu.gpus[0];
  const reported = first?.memoryTotalBytes;
  const rounded = first === undefined ? 0 : vramGb(reported ?? 0, gpu.source);
  // As the original: no memory of its own (or under half a GiB) takes the system RAM.
  // A GPU that failed to answer at all (name "") is not taken for a unified-memory one.
  const unifiedMemory = first !== undefined && first.name !== "" && rounded === 0 && ram > 0;
  const vram = unifiedMemory ? ram : rounded;
  const ramType = originalRamType(detectedRamType);
  const gpuModel = first?.name ?? "";

  const details: HardwareDetails = {
    gpu_model: gpuModel,
    gpu_vram_gb: vram,
    gpu_count: gpu.gpus.length,
    gpu_compute_capability: first?.computeCapability ?? "",
    cpu_model: cpu.model,
    cpu_arch: dockerArch(host.os.machine),
    cpu_cores: cpu.threads,
    cpu_threads: cpu.threads,
    ram_gb: ram,
    ram_type: ramType,
    ...storageIdentity,
    cuda_version: cuda,
    driver_version: gpu.driverVersion,
    os: osString(host.os.type, host.os.release),
    kernel: host.os.version,
    environment_type: environment,
    fingerprint: "",
  };
  details.fingerprint = buildFingerprint(details);

  for (const note of notes) logger.debug(`hardware detection: ${note}`);
  return {
    hostname: host.os.hostname,
    gpu_info: gpuInfoString(gpuModel, vram),
    gpu_count: details.gpu_count,
    cpu_info: cpu.model,
    cpu_arch: details.cpu_arch,
    ram_gb: ram,
    environment_type: environment,
    fingerprint: details.fingerprint,
    hardware_details: JSON.stringify(details),
    details,
    gpus: gpu.gpus,
    gpuSource: gpu.source,
    cudaDriverVersion: gpu.cudaDriverVersion,
    physicalCores: cpu.cores,
    unifiedMemory,
    storage,
    notes,
  };
}

/** Only the wire fields of a detection, for the register body. */
export function registrationFields(info: SystemInfo): RegistrationHardware {
  return {
    hostname: info.hostname,
    gpu_info: info.gpu_info,
    gpu_count: info.gpu_count,
    cpu_info: info.cpu_info,
    cpu_arch: info.cpu_arch,
    ram_gb: info.ram_gb,
    environment_type: info.environment_type,
    fingerprint: info.fingerprint,
    hardware_details: info.hardware_details,
  };
}
