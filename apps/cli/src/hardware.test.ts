import { afterEach, describe, expect, it } from "vitest";
import { useTempDir } from "@kitt/testkit";
import { fakeNvmlEnv } from "@kitt/testkit/nvml";

import { cliEnv, runCli } from "./test-cli.js";

const tempDir = useTempDir(afterEach);
const GIB = 1024 ** 3;

describe("kitt-agent hardware", () => {
  it("reports the registration fields, details and live GPUs from NVML (KITT_NVML_PATH)", async () => {
    const home = await tempDir();
    const nvml = await fakeNvmlEnv({
      gpus: [
        { name: "NVIDIA H100 80GB HBM3", memoryTotal: 80 * GIB, memoryUsed: 2 * GIB, utilGpu: 37, ccMajor: 9, ccMinor: 0 },
        { name: "NVIDIA H100 80GB HBM3", memoryTotal: 80 * GIB, memoryUsed: 0, utilGpu: 0, ccMajor: 9, ccMinor: 0 },
      ],
      driverVersion: "570.86.15",
      cudaVersion: 12080,
    });
    const r = await runCli(["hardware", "--json"], cliEnv(home, { ...nvml }));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as Record<string, unknown> & { hardware_details: Record<string, unknown>; gpus: Array<Record<string, unknown>> };
    expect(doc).toMatchObject({ gpu_info: "NVIDIA H100 80GB HBM3 80GB", gpu_count: 2, gpu_source: "nvml" });
    for (const key of ["hostname", "cpu_info", "cpu_arch", "ram_gb", "environment_type", "fingerprint"]) expect(doc).toHaveProperty(key);
    expect(doc.hardware_details).toMatchObject({
      gpu_model: "NVIDIA H100 80GB HBM3",
      gpu_vram_gb: 80,
      gpu_count: 2,
      gpu_compute_capability: "9.0",
      driver_version: "570.86.15",
    });
    // cuda_version is this machine's nvcc (the original's rule); the driver's CUDA comes from NVML.
    expect(doc.cuda_driver_version).toBe("12.8");
    expect(doc.fingerprint).toContain("NVIDIA-H100-80GB-HBM3-80GB-2x");
    expect(doc.gpus).toHaveLength(2);
    expect(doc.gpus[0]).toMatchObject({ index: 0, name: "NVIDIA H100 80GB HBM3", utilization_pct: 37, memory_used_gb: 2 });

    const text = await runCli(["hardware"], cliEnv(home, { ...nvml }));
    expect(text.stdout).toMatch(/^gpu +2 x NVIDIA H100 80GB HBM3 80GB$/m);
  });

  it("names the GPUs when the driver lacks nvmlDeviceGetPciInfo*: only the bus id is empty, with a note", async () => {
    const home = await tempDir();
    const nvml = await fakeNvmlEnv({
      gpus: [0, 1].map(() => ({ name: "NVIDIA H200", memoryTotal: 143_771 * 1024 * 1024, ccMajor: 9, ccMinor: 0 })),
      missingSymbols: ["nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2"],
    });
    const r = await runCli(["hardware", "--json"], cliEnv(home, { ...nvml }));
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { gpu_info: string; devices: Array<Record<string, unknown>>; notes: string[] };
    expect(doc.gpu_info).toBe("NVIDIA H200 140GB");
    expect(doc.devices.map((d) => [d.name, d.pciBusId, d.computeCapability])).toEqual([
      ["NVIDIA H200", "", "9.0"],
      ["NVIDIA H200", "", "9.0"],
    ]);
    expect(doc.notes.filter((n) => n.includes("PCI bus id"))).toHaveLength(2);
  });

  it("reports no GPU, without failing, when there is no NVML library and no nvidia-smi", async () => {
    const home = await tempDir();
    const r = await runCli(["hardware", "--json"], cliEnv(home, { PATH: "/usr/bin:/bin" }));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(doc).toMatchObject({ gpu_count: 0, gpu_info: "", gpus: [], gpu_source: "none" });
  });
});
