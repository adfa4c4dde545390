import type { Nvml, NvmlOptions } from "@kitt/nvml";
import { tryOpenNvml } from "@kitt/nvml";
import type { HostProbe } from "./host.js";
import { querySmi, smiNumber } from "./nvidia-smi.js";

export type GpuSource = "nvml" | "nvidia-smi" | "none";

export interface DetectedGpu {
  index: number;
  name: string;
  uuid: string;
  pciBusId: string;
  /** Bytes; undefined where the GPU has no dedicated memory (unified memory) or did not answer. */
  memoryTotalBytes?: number;
  /** "9.0"; "" when unknown. */
  computeCapability: string;
}

export interface GpuDetection {
  source: GpuSource;
  gpus: DetectedGpu[];
  /** "" when unknown. */
  driverVersion: string;
  /** The CUDA version the driver supports, from NVML; "" when unknown. */
  cudaDriverVersion: string;
  /** Why a source was skipped or failed, in the order tried. */
  notes: string[];
}

/** How detection reaches NVML; `false` skips it. */
export type NvmlAccess = NvmlOptions | false;

/** NVML, or the reason it cannot be used. */
export function openNvml(access: NvmlAccess, host: HostProbe): { nvml?: Nvml; note?: string } {
  if (access === false) return { note: "nvml: disabled" };
  try {
    const nvml = tryOpenNvml({ ...access, env: access.env ?? host.env });
    return nvml === undefined ? { note: "nvml: libnvidia-ml not found" } : { nvml };
  } catch (error) {
    return { note: `nvml: ${error instanceof Error ? error.message : String(error)}` };
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Every device through NVML. Each attribute is read on its own: a call the
 * driver lacks or that fails (no nvmlDeviceGetPciInfo*, a lost GPU) leaves
 * only that attribute empty, with a note; the device keeps its index.
 */
export function readNvmlGpus(nvml: Nvml, notes: string[]): DetectedGpu[] {
  const gpus: DetectedGpu[] = [];
  const count = nvml.deviceCount();
  for (let index = 0; index < count; index++) {
    const device = nvml.device(index);
    const read = <T>(what: string, get: () => T): T | undefined => {
      try {
        return get();
      } catch (error) {
        notes.push(`nvml: GPU ${index} ${what}: ${message(error)}`);
        return undefined;
      }
    };
    const memory = read("memory", () => device.memoryInfo());
    const cc = read("compute capability", () => device.computeCapability());
    gpus.push({
      index,
      name: read("name", () => device.name()) ?? "",
      uuid: read("uuid", () => device.uuid()) ?? "",
      pciBusId: read("PCI bus id", () => device.pciBusId()) ?? "",
      ...(memory === undefined ? {} : { memoryTotalBytes: memory.total }),
      computeCapability: cc === undefined ? "" : `${cc.major}.${cc.minor}`,
    });
  }
  return gpus;
}

function viaNvml(nvml: Nvml, notes: string[]): GpuDetection | undefined {
  try {
    const gpus = readNvmlGpus(nvml, notes);
    let driverVersion = "";
    let cudaDriverVersion = "";
    try {
      driverVersion = nvml.driverVersion();
    } catch (error) {
      notes.push(`nvml: driver version: ${message(error)}`);
    }
    try {
      cudaDriverVersion = nvml.cudaDriverVersion();
    } catch (error) {
      notes.push(`nvml: CUDA version: ${message(error)}`);
    }
    return { source: "nvml", gpus, driverVersion, cudaDriverVersion, notes };
  } catch (error) {
    notes.push(`nvml: ${message(error)}`);
    return undefined;
  }
}

const SMI_FIELDS = ["index", "name", "uuid", "pci.bus_id", "memory.total", "driver_version", "compute_cap"] as const;
const MIB = 1024 * 1024;

async function viaNvidiaSmi(host: HostProbe, notes: string[]): Promise<GpuDetection | undefined> {
  const query = await querySmi(host, SMI_FIELDS, { optional: ["compute_cap"] });
  if (!query.ok) {
    notes.push(`nvidia-smi: ${query.message}`);
    return undefined;
  }
  const gpus = query.rows.map((row, i): DetectedGpu => {
    const mib = smiNumber(row["memory.total"]);
    return {
      index: smiNumber(row.index) ?? i,
      name: row.name ?? "",
      uuid: row.uuid ?? "",
      pciBusId: row["pci.bus_id"] ?? "",
      ...(mib === undefined ? {} : { memoryTotalBytes: mib * MIB }),
      computeCapability: row.compute_cap ?? "",
    };
  });
  const driverVersion = query.rows[0]?.driver_version ?? "";
  return { source: "nvidia-smi", gpus, driverVersion, cudaDriverVersion: "", notes };
}

/** The NVML half of detection: synchronous, undefined when NVML is unusable (reasons in `notes`). */
export function detectGpusViaNvml(host: HostProbe, access: NvmlAccess, notes: string[]): GpuDetection | undefined {
  const { nvml, note } = openNvml(access, host);
  if (note !== undefined) notes.push(note);
  return nvml === undefined ? undefined : viaNvml(nvml, notes);
}

/** The fallback half: nvidia-smi, bounded by the host's command timeout, else no GPU. */
export async function detectGpusViaSmi(host: HostProbe, notes: string[]): Promise<GpuDetection> {
  return (
    (await viaNvidiaSmi(host, notes)) ?? { source: "none", gpus: [], driverVersion: "", cudaDriverVersion: "", notes }
  );
}

/**
 * GPUs from NVML, else from nvidia-smi, else none: a machine without a GPU
 * is a valid agent host.
 */
export async function detectGpus(host: HostProbe, access: NvmlAccess): Promise<GpuDetection> {
  const notes: string[] = [];
  return detectGpusViaNvml(host, access, notes) ?? (await detectGpusViaSmi(host, notes));
}
