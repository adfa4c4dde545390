import type { DetectedGpu, GpuTelemetry, HardwareDetails } from "@kitt/hardware";

/** What `kitt-agent hardware` shows: the registration fields, the details as an object, live GPU readings. */
export interface HardwareReport {
  hostname: string;
  gpu_info: string;
  gpu_count: number;
  cpu_info: string;
  cpu_arch: string;
  ram_gb: number;
  environment_type: string;
  fingerprint: string;
  hardware_details: HardwareDetails;
  gpus: GpuTelemetry[];
  gpu_source: string;
  unified_memory: boolean;
  /** Physical cores (`hardware_details.cpu_cores` is the logical count, as the original agent reports it). */
  physical_cores: number;
  /** The driver's CUDA version from NVML (`hardware_details.cuda_version` is nvcc's); "" when unknown. */
  cuda_driver_version: string;
  /** What detection found per device (bus id, compute capability). */
  devices: DetectedGpu[];
  notes: string[];
}

/** Detects this machine (NVML first, honouring KITT_NVML_PATH; nvidia-smi when NVML is unusable). */
export async function hardwareReport(): Promise<HardwareReport> {
  const { detectSystem, GpuSampler, registrationFields } = await import("@kitt/hardware");
  const info = await detectSystem();
  const snapshot = await new GpuSampler({ nvidiaSmi: info.gpuSource === "nvidia-smi" }).snapshot();
  return {
    // The registration fields, but the details as an object rather than the wire's JSON string.
    ...registrationFields(info),
    hardware_details: info.details,
    gpus: snapshot.gpus,
    gpu_source: info.gpuSource,
    unified_memory: info.unifiedMemory,
    physical_cores: info.physicalCores,
    cuda_driver_version: info.cudaDriverVersion,
    devices: info.gpus,
    notes: info.notes,
  };
}

/** The human form: one line per field, then one per GPU. */
export function formatHardware(r: HardwareReport): string {
  const d = r.hardware_details;
  const rows: Array<[string, string]> = [
    ["hostname", r.hostname],
    ["environment", r.environment_type],
    ["cpu", `${r.cpu_info || "unknown"} (${r.cpu_arch}, ${r.physical_cores} cores / ${d.cpu_threads} threads)`],
    ["ram", `${r.ram_gb} GiB${d.ram_type ? ` ${d.ram_type}` : ""}`],
    ["storage", [d.storage_brand, d.storage_model, d.storage_type].filter(Boolean).join(" ") || "unknown"],
    ["os", `${d.os} ${d.kernel}`.trim()],
    ["gpu", r.gpu_count === 0 ? "none detected" : `${r.gpu_count} x ${r.gpu_info}${r.unified_memory ? " (unified memory)" : ""}`],
    ["driver", d.driver_version || "-"],
    ["cuda", `${d.cuda_version || "-"} (nvcc), driver ${r.cuda_driver_version || "-"}`],
    ["compute cap.", d.gpu_compute_capability || "-"],
    ["fingerprint", r.fingerprint],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  for (const g of r.gpus) {
    const parts = [`GPU ${g.index}: ${g.name}`];
    if (g.utilization_pct !== undefined) parts.push(`${g.utilization_pct}% busy`);
    if (g.memory_used_gb !== undefined && g.memory_total_gb !== undefined) parts.push(`${g.memory_used_gb}/${g.memory_total_gb} GiB`);
    if (g.temperature_c !== undefined) parts.push(`${g.temperature_c} C`);
    if (g.power_w !== undefined) parts.push(`${g.power_w} W`);
    lines.push(`  ${parts.join(", ")}`);
  }
  return lines.join("\n");
}
