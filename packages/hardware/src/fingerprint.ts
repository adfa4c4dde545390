import type { HardwareDetails } from "./detect-system.js";

/** What the fingerprint is built from: the `hardware_details` fields of the same names. */
export type FingerprintInput = Omit<HardwareDetails, "gpu_compute_capability" | "cpu_arch" | "cpu_threads" | "environment_type" | "fingerprint">;

/**
 * Parts are `_`-joined, so no part may contain one; whitespace becomes a dash
 * as the format says ("NVIDIA H200" -> "NVIDIA-H200").
 */
function dashed(text: string): string {
  return text.trim().replace(/[\s_]+/g, "-");
}

/**
 * The compact fingerprint of kitt-protocol.md "Register":
 * `<GPU>-<VRAM>GB[-<n>x]_<CPU first>-<CPU last>-<cores>c_<RAM>GB[-<type>]_<brand>-<model>-<TYPE>_CUDA-<v>_<driver>_<OS>-<kernel>`,
 * each part only when known. The server files results under this string, so
 * the same machine must always produce the same one.
 */
export function buildFingerprint(d: FingerprintInput): string {
  const parts: string[] = [];

  if (d.gpu_model !== "") {
    let gpu = dashed(d.gpu_model);
    if (d.gpu_vram_gb > 0) gpu += `-${d.gpu_vram_gb}GB`;
    if (d.gpu_count > 1) gpu += `-${d.gpu_count}x`;
    parts.push(gpu);
  }

  const words = d.cpu_model.trim().split(/\s+/).filter((w) => w !== "");
  const first = words[0];
  const last = words[words.length - 1];
  if (first !== undefined && last !== undefined) {
    // A one-word model is named once, as the original agent did.
    let cpu = words.length > 1 ? `${dashed(first)}-${dashed(last)}` : dashed(first);
    if (d.cpu_cores > 0) cpu += `-${d.cpu_cores}c`;
    parts.push(cpu);
  }

  if (d.ram_gb > 0) parts.push(d.ram_type === "" ? `${d.ram_gb}GB` : `${d.ram_gb}GB-${dashed(d.ram_type)}`);

  if (d.storage_model !== "") {
    const storage = [d.storage_brand, d.storage_model, d.storage_type.toUpperCase()].filter((p) => p !== "");
    parts.push(storage.map(dashed).join("-"));
  }

  if (d.cuda_version !== "") parts.push(`CUDA-${dashed(d.cuda_version)}`);
  if (d.driver_version !== "") parts.push(dashed(d.driver_version));
  if (d.os !== "") parts.push(d.kernel === "" ? dashed(d.os) : `${dashed(d.os)}-${dashed(d.kernel)}`);

  return parts.join("_");
}
