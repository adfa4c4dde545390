export interface NvmlOptions {
  /** Path (or bare name, searched like dlopen does) of libnvidia-ml. Wins over `KITT_NVML_PATH`. */
  libraryPath?: string;
  /** Environment to read `KITT_NVML_PATH` from; defaults to `process.env`. */
  env?: Record<string, string | undefined>;
}

/** Bytes. */
export interface MemoryInfo {
  total: number;
  free: number;
  used: number;
}

/** Percent over NVML's last sample period. */
export interface Utilization {
  gpu: number;
  memory: number;
}

export interface ComputeCapability {
  major: number;
  minor: number;
}

/** One device with every field read once; an absent field is one the device or driver does not report. */
export interface GpuInfo {
  index: number;
  name: string;
  uuid: string;
  /** "00000000:1B:00.0" (eight-digit domain, as nvmlDeviceGetPciInfo_v3 reports it); "" when the driver cannot say. */
  pciBusId: string;
  memory?: MemoryInfo;
  utilization?: Utilization;
  computeCapability?: ComputeCapability;
  temperatureC?: number;
  powerW?: number;
}
