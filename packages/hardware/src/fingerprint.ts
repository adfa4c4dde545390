import type { HardwareDetails } from "./detect-system.js";

/** What the fingerprint is built from: the `hardware_details` fields of the same names. */
export type FingerprintInput = Omit<HardwareDetails, "gpu_compute_capability" | "cpu_arch" | "cpu_threads" | "kernel" | "environment_type" | "fingerprint">;

/** The original agent replaces each space (only spaces) with a dash. */
function dashed(text: string): string {
  return text.replace(/ /g, "-");
}

/**
 * The compact fingerprint, built by the original agent's rules so the same
 * machine gives the same string whichever agent registers it:
 * `<GPU>[-<VRAM>GB][-<n>x]_<CPU first>-<CPU last>-<cores>c_<RAM>GB[-<type>]_<brand>-<model>-<TYPE>_CUDA-<v>_<driver>_<os>`.
 * The GPU part only with a GPU, storage, CUDA and driver only when known; the
 * CPU, RAM and OS parts always (`-0c`, `0GB` included, as the original does).
 */
export function buildFingerprint(d: FingerprintInput): string {
  const parts: string[] = [];

  if (d.gpu_model !== "") {
    let gpu = dashed(d.gpu_model);
    if (d.gpu_vram_gb > 0) gpu += `-${d.gpu_vram_gb}GB`;
    if (d.gpu_count > 1) gpu += `-${d.gpu_count}x`;
    parts.push(gpu);
  }

  const words = d.cpu_model.split(/\s+/).filter((w) => w !== "");
  const first = words[0] ?? "unknown";
  const last = words[words.length - 1] ?? first;
  parts.push(`${words.length > 1 ? `${first}-${last}` : first}-${d.cpu_cores}c`);

  parts.push(d.ram_type === "" ? `${d.ram_gb}GB` : `${d.ram_gb}GB-${d.ram_type}`);

  if (d.storage_model !== "") {
    let storage = `${d.storage_brand === "" ? "Unknown" : d.storage_brand}-${dashed(d.storage_model)}`;
    if (d.storage_type !== "") storage += `-${d.storage_type.toUpperCase()}`;
    parts.push(storage);
  }

  if (d.cuda_version !== "") parts.push(`CUDA-${d.cuda_version}`);
  if (d.driver_version !== "") parts.push(d.driver_version);
  parts.push(d.os);

  return parts.join("_");
}
