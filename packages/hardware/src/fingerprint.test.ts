import { describe, expect, it } from "vitest";
import { buildFingerprint, type FingerprintInput } from "./fingerprint.js";

const H200: FingerprintInput = {
  gpu_model: "NVIDIA H200",
  gpu_vram_gb: 141,
  gpu_count: 1,
  cpu_model: "AMD EPYC 9124 16-Core Processor",
  cpu_cores: 16,
  ram_gb: 128,
  ram_type: "DDR5",
  storage_brand: "Samsung",
  storage_model: "MZ1L21T9",
  storage_type: "nvme",
  cuda_version: "12.8",
  driver_version: "570.86.15",
  os: "Linux",
  kernel: "6.8.0-45-generic",
};

describe("buildFingerprint", () => {
  it("reproduces kitt-protocol.md's example exactly", () => {
    expect(buildFingerprint(H200)).toBe(
      "NVIDIA-H200-141GB_AMD-Processor-16c_128GB-DDR5_Samsung-MZ1L21T9-NVME_CUDA-12.8_570.86.15_Linux-6.8.0-45-generic",
    );
  });

  it("adds the GPU count only when there is more than one", () => {
    expect(buildFingerprint({ ...H200, gpu_model: "NVIDIA H100 80GB HBM3", gpu_vram_gb: 80, gpu_count: 8 })).toMatch(
      /^NVIDIA-H100-80GB-HBM3-80GB-8x_AMD-/,
    );
  });

  it("leaves out every part that is unknown", () => {
    const bare: FingerprintInput = {
      ...H200,
      gpu_model: "",
      gpu_vram_gb: 0,
      gpu_count: 0,
      ram_type: "",
      storage_brand: "",
      storage_model: "",
      storage_type: "",
      cuda_version: "",
      driver_version: "",
    };
    expect(buildFingerprint(bare)).toBe("AMD-Processor-16c_128GB_Linux-6.8.0-45-generic");
    expect(buildFingerprint({ ...bare, cpu_model: "", ram_gb: 0, os: "", kernel: "" })).toBe("");
    expect(buildFingerprint({ ...bare, gpu_model: "NVIDIA GB10", gpu_vram_gb: 0, gpu_count: 1 })).toMatch(/^NVIDIA-GB10_AMD/);
    expect(buildFingerprint({ ...bare, storage_model: "Mystery 1TB", storage_type: "ssd" })).toContain("_Mystery-1TB-SSD_");
  });

  it("keeps `_` for separating parts only", () => {
    const fp = buildFingerprint({ ...H200, storage_brand: "Micron", storage_model: "7450_MTFDKCC1T9TFR" });
    expect(fp).toContain("_Micron-7450-MTFDKCC1T9TFR-NVME_");
    expect(fp.split("_")).toHaveLength(7);
  });

  it("names a one-word CPU once", () => {
    expect(buildFingerprint({ ...H200, cpu_model: "Graviton3", cpu_cores: 64 })).toContain("_Graviton3-64c_");
  });
});
