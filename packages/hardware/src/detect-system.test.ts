import { check } from "@kitt/protocol";
import { fakeNvmlEnv, type FakeGpu } from "@kitt/testkit/nvml";
import { afterEach, describe, expect, it } from "vitest";
import { detectSystem, registrationFields, vramGb } from "./detect-system.js";
import { createHostProbe } from "./host.js";
import {
  DMIDECODE_DDR5,
  meminfo,
  mountinfo,
  NVCC_12_8,
  ORIGINAL_H200_HOST_TAIL,
  smiDetectCsv,
  SPARK_CPUINFO,
  x86Cpuinfo,
} from "./test-fixtures.js";
import { fakeCommandCalls, makeFakeMachine, type FakeCommand, type FakeMachine } from "./test-host.js";

const machines: FakeMachine[] = [];
afterEach(async () => {
  await Promise.all(machines.splice(0).map((m) => m.cleanup()));
});

const H200_MIB = 143_771;
const H200: FakeGpu = {
  name: "NVIDIA H200",
  memoryTotal: H200_MIB * 1024 * 1024,
  memoryUsed: 1024 * 1024 * 1024,
  ccMajor: 9,
  ccMinor: 0,
};
const NO_NVML = { libraryPath: "/nonexistent/libnvidia-ml.so.1" };

/** The host behind kitt-protocol.md's example fingerprint. */
async function exampleHost(commands: Record<string, FakeCommand> = {}): Promise<FakeMachine> {
  const m = await makeFakeMachine({
    files: {
      "/proc/cpuinfo": x86Cpuinfo("AMD EPYC 9124 16-Core Processor", 1, 16, 2),
      // 127.8 GiB visible to the kernel on a 128 GiB box.
      "/proc/meminfo": meminfo(134_000_000),
      "/proc/version": "Linux version 6.8.0-45-generic (buildd@lcy02-amd64-075) #45-Ubuntu SMP\n",
      "/proc/self/mountinfo": mountinfo("/dev/nvme0n1p2"),
      "/sys/class/nvme/nvme0/model": "SAMSUNG MZ1L21T9HCLS-00A07              \n",
      "/sys/block/nvme0n1/device/model": "SAMSUNG MZ1L21T9HCLS-00A07              \n",
    },
    commands: { dmidecode: { stdout: DMIDECODE_DDR5 }, ...commands },
  });
  machines.push(m);
  return m;
}

/** What the original agent registers for exampleHost with one H200 (nvcc 12.8 on PATH). */
const EXAMPLE_FINGERPRINT =
  "NVIDIA-H200-140GB_AMD-Processor-32c_128GB-DDR5_Samsung-SAMSUNG-MZ1L21T9HCLS-00A07-NVME_CUDA-12.8_570.86.15_Linux-6.8.0-45-generic";

describe("detectSystem on this machine", () => {
  it("runs against the real host and reports a consistent result", async () => {
    const info = await detectSystem();
    expect(info.gpu_count).toBe(info.gpus.length);
    if (info.gpuSource === "none") {
      expect(info.gpu_count).toBe(0);
      expect(info.gpu_info).toBe("");
    }
    expect(["amd64", "arm64"]).toContain(info.cpu_arch);
    expect(info.ram_gb).toBeGreaterThan(0);
    expect(info.hostname).not.toBe("");
    expect(JSON.parse(info.hardware_details)).toEqual(info.details);
    expect(info.fingerprint.endsWith(`_${info.details.os}`)).toBe(true);
    expect(info.details.cpu_cores).toBe(info.details.cpu_threads);
    expect(check("registerRequest", { name: "this-host", ...registrationFields(info) })).toBeUndefined();
  });

  it("reports gpu_count 0 without NVML and without nvidia-smi on PATH", async () => {
    const m = await makeFakeMachine();
    machines.push(m);
    const info = await detectSystem({ host: createHostProbe({ env: { PATH: m.bin } }), nvml: NO_NVML });
    expect(info).toMatchObject({ gpu_count: 0, gpu_info: "", gpuSource: "none" });
    expect(info.details).toMatchObject({ gpu_model: "", gpu_vram_gb: 0, gpu_compute_capability: "", driver_version: "" });
  });
});

describe("detectSystem through NVML (fake libnvidia-ml)", () => {
  it("builds the registration fields and kitt-protocol.md's example fingerprint for an H200 host", async () => {
    const m = await exampleHost({ nvcc: { stdout: NVCC_12_8 } });
    const env = await fakeNvmlEnv({ gpus: [H200], driverVersion: "570.86.15", cudaVersion: 12080 });
    const info = await detectSystem({ host: m.host, nvml: { libraryPath: env.KITT_NVML_PATH } });

    expect(registrationFields(info)).toEqual({
      hostname: "gpu-host-01",
      gpu_info: "NVIDIA H200 140GB",
      gpu_count: 1,
      cpu_info: "AMD EPYC 9124 16-Core Processor",
      cpu_arch: "amd64",
      ram_gb: 128,
      environment_type: "native_linux",
      fingerprint: EXAMPLE_FINGERPRINT,
      hardware_details: info.hardware_details,
    });
    expect(typeof info.hardware_details).toBe("string");
    const details = JSON.parse(info.hardware_details) as Record<string, unknown>;
    expect(Object.keys(details)).toEqual([
      "gpu_model",
      "gpu_vram_gb",
      "gpu_count",
      "gpu_compute_capability",
      "cpu_model",
      "cpu_arch",
      "cpu_cores",
      "cpu_threads",
      "ram_gb",
      "ram_type",
      "storage_brand",
      "storage_model",
      "storage_type",
      "cuda_version",
      "driver_version",
      "os",
      "kernel",
      "environment_type",
      "fingerprint",
    ]);
    expect(details).toEqual({
      gpu_model: "NVIDIA H200",
      gpu_vram_gb: 140,
      gpu_count: 1,
      gpu_compute_capability: "9.0",
      cpu_model: "AMD EPYC 9124 16-Core Processor",
      cpu_arch: "amd64",
      cpu_cores: 32,
      cpu_threads: 32,
      ram_gb: 128,
      ...ORIGINAL_H200_HOST_TAIL,
      environment_type: "native_linux",
      fingerprint: EXAMPLE_FINGERPRINT,
    });
    expect(info.gpuSource).toBe("nvml");
    // The register body the daemon will send passes the protocol's own schema.
    expect(check("registerRequest", { name: "gpu-host-01", port: 8090, ...registrationFields(info) })).toBeUndefined();
    // NVML answered the GPUs: no nvidia-smi; CUDA is the toolkit's, as the original reports it.
    expect(await fakeCommandCalls(m.bin, "nvcc")).toEqual(["--version"]);
    expect(info.cudaDriverVersion).toBe("12.8");
    expect(info.physicalCores).toBe(16);
  });

  it("counts 8 GPUs into gpu_count and the fingerprint", async () => {
    const m = await exampleHost();
    const env = await fakeNvmlEnv({ gpus: Array.from({ length: 8 }, () => H200) });
    const info = await detectSystem({ host: m.host, nvml: { libraryPath: env.KITT_NVML_PATH } });
    expect(info.gpu_count).toBe(8);
    expect(info.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(info.gpus.map((g) => g.uuid)).size).toBe(8);
    expect(info.fingerprint.startsWith("NVIDIA-H200-140GB-8x_AMD-Processor-32c_")).toBe(true);
  });

  it("DGX Spark: unified memory stands in for VRAM, arm64, dgx_spark", async () => {
    const m = await makeFakeMachine({
      files: {
        "/etc/dgx-release": 'DGX_NAME="DGX Spark"\nDGX_PRETTY_NAME="NVIDIA DGX Spark"\n',
        "/proc/cpuinfo": SPARK_CPUINFO,
        "/proc/meminfo": meminfo(125_000_000),
        "/sys/class/nvme/nvme0/model": "Samsung SSD 990 PRO 4TB\n",
        "/sys/block/nvme0n1/device/model": "Samsung SSD 990 PRO 4TB\n",
      },
      os: { machine: "aarch64", release: "6.11.0-1016-nvidia", hostname: "spark-7f3a" },
    });
    machines.push(m);
    const env = await fakeNvmlEnv({
      gpus: [{ name: "NVIDIA GB10", memoryTotal: null, ccMajor: 12, ccMinor: 1 }],
      driverVersion: "580.95.05",
      cudaVersion: 13000,
    });
    const info = await detectSystem({ host: m.host, nvml: { libraryPath: env.KITT_NVML_PATH } });
    expect(info.unifiedMemory).toBe(true);
    expect(info).toMatchObject({
      gpu_info: "NVIDIA GB10 119GB",
      gpu_count: 1,
      cpu_arch: "arm64",
      ram_gb: 119,
      environment_type: "dgx_spark",
    });
    expect(info.details).toMatchObject({
      gpu_vram_gb: 119,
      gpu_compute_capability: "12.1",
      ram_type: "",
      cpu_model: "ARM Cortex-X925 + Cortex-A725",
      cuda_version: "",
    });
    expect(info.cudaDriverVersion).toBe("13.0");
    expect(info.fingerprint).toBe(
      "NVIDIA-GB10-119GB_ARM-Cortex-A725-20c_119GB_Samsung-Samsung-SSD-990-PRO-4TB-NVME_580.95.05_Linux-6.11.0-1016-nvidia",
    );
  });

  it("a driver without nvmlDeviceGetPciInfo* loses only the bus id, with a note per GPU", async () => {
    const m = await exampleHost({ nvcc: { stdout: NVCC_12_8 } });
    const env = await fakeNvmlEnv({
      gpus: [H200, H200],
      driverVersion: "570.86.15",
      cudaVersion: 12080,
      missingSymbols: ["nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2"],
    });
    const info = await detectSystem({ host: m.host, nvml: { libraryPath: env.KITT_NVML_PATH } });
    expect(info.gpuSource).toBe("nvml");
    expect(info.gpu_info).toBe("NVIDIA H200 140GB");
    expect(info.details).toMatchObject({ gpu_model: "NVIDIA H200", gpu_vram_gb: 140, gpu_compute_capability: "9.0" });
    expect(info.gpus.map((g) => [g.name, g.pciBusId, g.computeCapability])).toEqual([
      ["NVIDIA H200", "", "9.0"],
      ["NVIDIA H200", "", "9.0"],
    ]);
    expect(info.gpus.every((g) => g.uuid.startsWith("GPU-") && g.memoryTotalBytes === H200_MIB * 1024 * 1024)).toBe(true);
    const pciNotes = info.notes.filter((n) => n.includes("PCI bus id"));
    expect(pciNotes).toHaveLength(2);
    expect(pciNotes[0]).toMatch(/^nvml: GPU 0 PCI bus id: nvmlDeviceGetPciInfo_v2 .*Function Not Found/);
    expect(info.fingerprint.startsWith("NVIDIA-H200-140GB-2x_")).toBe(true);
  });

  it("falls back to nvidia-smi when nvmlInit fails", async () => {
    const m = await exampleHost({ "nvidia-smi": { stdout: smiDetectCsv(2) }, nvcc: { stdout: NVCC_12_8 } });
    const env = await fakeNvmlEnv({ gpus: [H200], initError: 9 });
    const info = await detectSystem({ host: m.host, nvml: { libraryPath: env.KITT_NVML_PATH } });
    expect(info.gpuSource).toBe("nvidia-smi");
    expect(info.gpu_count).toBe(2);
    expect(info.notes.join("\n")).toMatch(/nvml: nvmlInit_v2 failed/);
  });
});

describe("detectSystem without NVML", () => {
  it("gets the same fingerprint from nvidia-smi and nvcc", async () => {
    const m = await exampleHost({ "nvidia-smi": { stdout: smiDetectCsv(1) }, nvcc: { stdout: NVCC_12_8 } });
    const info = await detectSystem({ host: m.host, nvml: NO_NVML });
    expect(info.gpuSource).toBe("nvidia-smi");
    expect(info.fingerprint).toBe(EXAMPLE_FINGERPRINT);
    expect(info.gpu_info).toBe("NVIDIA H200 140GB");
    expect(info.details.gpu_compute_capability).toBe("9.0");
    expect(await fakeCommandCalls(m.bin, "nvidia-smi")).toEqual([
      "--query-gpu=index,name,uuid,pci.bus_id,memory.total,driver_version,compute_cap --format=csv,noheader,nounits",
    ]);
  });

  it("asks again without compute_cap when an old nvidia-smi refuses the field", async () => {
    const old = "0, Tesla V100-SXM2-32GB, GPU-1, 00000000:18:00.0, 32510, 470.256.02\n";
    const m = await exampleHost({
      "nvidia-smi": {
        byArgs: [{ match: "compute_cap", stdout: 'Field "compute_cap" is not a valid field to query.\n', exitCode: 2 }],
        stdout: old,
      },
    });
    const info = await detectSystem({ host: m.host, nvml: NO_NVML });
    // The original's nvidia-smi rule: 32510 MiB integer-divided by 1024.
    expect(info).toMatchObject({ gpu_info: "Tesla V100-SXM2-32GB 31GB", gpu_count: 1 });
    expect(info.details).toMatchObject({ gpu_compute_capability: "", driver_version: "470.256.02", cuda_version: "" });
    expect(await fakeCommandCalls(m.bin, "nvidia-smi")).toHaveLength(2);
  });

  it("unified memory through nvidia-smi ([N/A] memory) also falls back to RAM", async () => {
    const m = await exampleHost({ "nvidia-smi": { stdout: smiDetectCsv(1, "NVIDIA GB10", "[N/A]", "12.1") } });
    const info = await detectSystem({ host: m.host, nvml: NO_NVML });
    expect(info.unifiedMemory).toBe(true);
    expect(info.gpu_info).toBe("NVIDIA GB10 128GB");
  });

  it("a hung nvidia-smi and nvcc cost one command timeout, then no GPU", async () => {
    const m = await exampleHost({ "nvidia-smi": { hangSeconds: 30 }, nvcc: { hangSeconds: 30 } });
    // Long enough for the healthy fakes (dmidecode) on a loaded machine: 300 ms was not, beside another suite.
    const host = { ...m.host, commandTimeoutMs: 3000 };
    const info = await detectSystem({ host, nvml: NO_NVML });
    expect(info).toMatchObject({ gpu_count: 0, gpu_info: "", gpuSource: "none" });
    expect(info.notes).toContain("nvidia-smi: nvidia-smi timed out after 3000 ms");
    expect(info.notes).toContain("cuda: nvcc timed out after 3000 ms");
    // Everything else was still detected.
    expect(info.fingerprint).toBe("AMD-Processor-32c_128GB-DDR5_Samsung-SAMSUNG-MZ1L21T9HCLS-00A07-NVME_Linux-6.8.0-45-generic");
  });
});

describe("vramGb", () => {
  it("rounds NVML's total to the nearest GiB, as the original", () => {
    expect(vramGb(143_771 * 1024 * 1024)).toBe(140); // H200
    expect(vramGb(81_559 * 1024 * 1024)).toBe(80); // H100 SXM
    expect(vramGb(80 * 1024 ** 3)).toBe(80); // A100 80GB, exact
    expect(vramGb(24_564 * 1024 * 1024)).toBe(24); // RTX 4090
    expect(vramGb(97_887 * 1024 * 1024)).toBe(96); // RTX PRO 6000: 95.6 GiB
  });

  it("integer-divides nvidia-smi's MiB by 1024, as the original", () => {
    expect(vramGb(143_771 * 1024 * 1024, "nvidia-smi")).toBe(140);
    expect(vramGb(97_887 * 1024 * 1024, "nvidia-smi")).toBe(95);
    expect(vramGb(32_510 * 1024 * 1024, "nvidia-smi")).toBe(31);
  });
});
