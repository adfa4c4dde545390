import { describe, expect, it } from "vitest";
import { buildFingerprint, type FingerprintInput } from "./fingerprint.js";
import { ORIGINAL_H200_HOST_TAIL } from "./test-fixtures.js";

// The fields as the original agent reports them for kitt-protocol.md's example host.
const H200: FingerprintInput = {
  gpu_model: "NVIDIA H200",
  gpu_vram_gb: 140,
  gpu_count: 1,
  cpu_model: "AMD EPYC 9124 16-Core Processor",
  cpu_cores: 32,
  ram_gb: 128,
  ...ORIGINAL_H200_HOST_TAIL,
};

describe("buildFingerprint (the original agent's rules)", () => {
  it("builds every part from the details", () => {
    expect(buildFingerprint(H200)).toBe(
      "NVIDIA-H200-140GB_AMD-Processor-32c_128GB-DDR5_Samsung-SAMSUNG-MZ1L21T9HCLS-00A07-NVME_CUDA-12.8_570.86.15_Linux-6.8.0-45-generic",
    );
  });

  it("adds the GPU count only when there is more than one", () => {
    expect(buildFingerprint({ ...H200, gpu_model: "NVIDIA H100 80GB HBM3", gpu_vram_gb: 80, gpu_count: 8 })).toMatch(
      /^NVIDIA-H100-80GB-HBM3-80GB-8x_AMD-/,
    );
  });

  it("leaves out GPU, storage, CUDA and driver when unknown, never CPU, RAM and OS", () => {
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
    expect(buildFingerprint(bare)).toBe("AMD-Processor-32c_128GB_Linux-6.8.0-45-generic");
    expect(buildFingerprint({ ...bare, cpu_model: "", cpu_cores: 0, ram_gb: 0 })).toBe("unknown-0c_0GB_Linux-6.8.0-45-generic");
    expect(buildFingerprint({ ...bare, gpu_model: "NVIDIA GB10", gpu_vram_gb: 0, gpu_count: 1 })).toMatch(/^NVIDIA-GB10_AMD/);
    expect(buildFingerprint({ ...bare, storage_brand: "Unknown", storage_model: "Mystery 1TB", storage_type: "ssd" })).toContain(
      "_Unknown-Mystery-1TB-SSD_",
    );
  });

  it("dashes spaces only, as the original does", () => {
    expect(buildFingerprint({ ...H200, storage_brand: "Micron", storage_model: "Micron_7450_MTFDKCC1T9TFR" })).toContain(
      "_Micron-Micron_7450_MTFDKCC1T9TFR-NVME_",
    );
  });

  it("names a one-word CPU once", () => {
    expect(buildFingerprint({ ...H200, cpu_model: "Graviton3", cpu_cores: 64 })).toContain("_Graviton3-64c_");
  });
});
