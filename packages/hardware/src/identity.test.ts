import { fakeNvmlEnv, type FakeGpu } from "@kitt/testkit/nvml";
import { describe, expect, it } from "vitest";
import { detectSystem } from "./detect-system.js";
import type { HostOs } from "./host.js";
import {
  DMIDECODE_DDR5,
  meminfo,
  NVCC_12_8,
  ORIGINAL_H200_HOST_TAIL,
  smiDetectCsv,
  SPARK_CPUINFO,
  x86Cpuinfo,
} from "./test-fixtures.js";
import { makeFakeMachine, type FakeCommand } from "./test-host.js";

/*
 * The identity table: one fake host per row (fake /proc and /sys, fake
 * nvidia-smi, nvcc, lsblk and dmidecode on PATH, fake libnvidia-ml) through
 * our detection, against the strings the original agent (kitt-agent 1.7.0,
 * hardware.py; kitt-protocol.md section 5) computes for the same host, worked
 * out by hand from its rules and written out literally here.
 */

const MIB = 1024 * 1024;
const H200: FakeGpu = { name: "NVIDIA H200", memoryTotal: 143_771 * MIB, ccMajor: 9, ccMinor: 0 };
const GB10: FakeGpu = { name: "NVIDIA GB10", memoryTotal: null, ccMajor: 12, ccMinor: 1 };
const NVCC_13_0 = "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 13.0, V13.0.48\nBuild cuda_13.0.r13.0/compiler.36260728_0\n";
const DMIDECODE_LPDDR5X = [
  "# dmidecode 3.5",
  ...Array.from({ length: 8 }, (_, i) =>
    `Memory Device\n\tSize: 16 GB\n\tLocator: LP5X_${i}\n\tType: LPDDR5X\n\tSpeed: 8533 MT/s\n`,
  ),
].join("\n");

interface Row {
  host: string;
  files: Record<string, string>;
  commands: Record<string, FakeCommand>;
  os?: Partial<HostOs>;
  /** The fake libnvidia-ml's GPUs; undefined: no libnvidia-ml at all. */
  nvml?: { gpus: FakeGpu[]; driverVersion: string; cudaVersion: number };
  /** What the original agent registers for this host. */
  gpu_info: string;
  details: Record<string, string | number>;
  fingerprint: string;
}

const ROWS: Row[] = [
  {
    host: "8x H200, 2x 96-core EPYC with SMT, two NVMe drives",
    files: {
      "/proc/cpuinfo": x86Cpuinfo("AMD EPYC 9654 96-Core Processor", 2, 96, 2),
      "/proc/meminfo": meminfo(2_113_000_000),
      "/proc/self/mountinfo": "29 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme1n1p2 rw\n",
      "/sys/class/nvme/nvme0/model": "SAMSUNG MZ1L21T9HCLS-00A07              \n",
      "/sys/block/nvme0n1/device/model": "SAMSUNG MZ1L21T9HCLS-00A07              \n",
      "/sys/class/nvme/nvme1/model": "Micron_7450_MTFDKCC3T8TFR\n",
      "/sys/block/nvme1n1/device/model": "Micron_7450_MTFDKCC3T8TFR\n",
    },
    commands: { dmidecode: { stdout: DMIDECODE_DDR5 }, nvcc: { stdout: NVCC_12_8 }, "nvidia-smi": { stdout: smiDetectCsv(8) } },
    nvml: { gpus: Array.from({ length: 8 }, () => H200), driverVersion: "570.86.15", cudaVersion: 12080 },
    gpu_info: "NVIDIA H200 140GB",
    details: {
      gpu_model: "NVIDIA H200",
      gpu_vram_gb: 140,
      gpu_count: 8,
      gpu_compute_capability: "9.0",
      cpu_model: "AMD EPYC 9654 96-Core Processor",
      cpu_cores: 384,
      cpu_threads: 384,
      ram_gb: 2015,
      ...ORIGINAL_H200_HOST_TAIL,
    },
    fingerprint:
      "NVIDIA-H200-140GB-8x_AMD-Processor-384c_2015GB-DDR5_Samsung-SAMSUNG-MZ1L21T9HCLS-00A07-NVME_CUDA-12.8_570.86.15_Linux-6.8.0-45-generic",
  },
  {
    host: "2x H200 without libnvidia-ml: nvidia-smi's MiB integer-divided",
    files: {
      "/proc/cpuinfo": x86Cpuinfo("AMD EPYC 9124 16-Core Processor", 1, 16, 2),
      "/proc/meminfo": meminfo(134_000_000),
      "/sys/block/nvme0n1/device/model": "SAMSUNG MZ1L21T9HCLS-00A07\n",
    },
    commands: { dmidecode: { stdout: DMIDECODE_DDR5 }, nvcc: { stdout: NVCC_12_8 }, "nvidia-smi": { stdout: smiDetectCsv(2) } },
    gpu_info: "NVIDIA H200 140GB",
    details: { gpu_vram_gb: 140, gpu_count: 2, cpu_cores: 32, cpu_threads: 32, ram_gb: 128, driver_version: "570.86.15" },
    fingerprint:
      "NVIDIA-H200-140GB-2x_AMD-Processor-32c_128GB-DDR5_Samsung-SAMSUNG-MZ1L21T9HCLS-00A07-NVME_CUDA-12.8_570.86.15_Linux-6.8.0-45-generic",
  },
  {
    host: "no GPU, no CUDA, no DMI access, SATA disk from lsblk",
    files: {
      "/proc/cpuinfo": x86Cpuinfo("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 1, 32, 2),
      "/proc/meminfo": meminfo(263_000_000),
      "/proc/self/mountinfo": "29 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n",
    },
    commands: {
      lsblk: { stdout: "NAME  TYPE MODEL\nloop0 loop \nsda   disk WDC  WDS100T2B0A-00SM50\nsdb   disk Samsung SSD 870 EVO 1TB\n" },
    },
    gpu_info: "",
    details: {
      gpu_model: "",
      gpu_vram_gb: 0,
      gpu_count: 0,
      gpu_compute_capability: "",
      cpu_model: "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
      cpu_cores: 64,
      cpu_threads: 64,
      ram_gb: 251,
      ram_type: "",
      storage_brand: "WD",
      storage_model: "WDC WDS100T2B0A-00SM50",
      storage_type: "ssd",
      cuda_version: "",
      driver_version: "",
      os: "Linux-6.8.0-45-generic",
    },
    fingerprint: "Intel(R)-2.00GHz-64c_251GB_WD-WDC-WDS100T2B0A-00SM50-SSD_Linux-6.8.0-45-generic",
  },
  {
    // cpu_info: our brand string for the Arm cores; what py-cpuinfo names a GB10 is not verified.
    host: "DGX Spark GB10: unified memory, LPDDR5X read as DDR5 like the original",
    files: {
      "/etc/dgx-release": 'DGX_NAME="DGX Spark"\n',
      "/proc/cpuinfo": SPARK_CPUINFO,
      "/proc/meminfo": meminfo(125_000_000),
      "/sys/block/nvme0n1/device/model": "Samsung SSD 990 PRO 4TB\n",
    },
    commands: {
      dmidecode: { stdout: DMIDECODE_LPDDR5X },
      nvcc: { stdout: NVCC_13_0 },
      "nvidia-smi": { stdout: smiDetectCsv(1, "NVIDIA GB10", "[N/A]", "12.1") },
    },
    os: {
      machine: "aarch64",
      release: "6.11.0-1016-nvidia",
      version: "#16-Ubuntu SMP PREEMPT_DYNAMIC Wed Sep 10 14:02:26 UTC 2025",
      hostname: "spark-7f3a",
    },
    nvml: { gpus: [GB10], driverVersion: "580.95.05", cudaVersion: 13000 },
    gpu_info: "NVIDIA GB10 119GB",
    details: {
      gpu_model: "NVIDIA GB10",
      gpu_vram_gb: 119,
      gpu_count: 1,
      gpu_compute_capability: "12.1",
      cpu_cores: 20,
      ram_gb: 119,
      ram_type: "DDR5",
      storage_brand: "Samsung",
      storage_model: "Samsung SSD 990 PRO 4TB",
      cuda_version: "13.0",
      os: "Linux-6.11.0-1016-nvidia",
      kernel: "#16-Ubuntu SMP PREEMPT_DYNAMIC Wed Sep 10 14:02:26 UTC 2025",
      environment_type: "dgx_spark",
    },
    fingerprint:
      "NVIDIA-GB10-119GB_ARM-Cortex-A725-20c_119GB-DDR5_Samsung-Samsung-SSD-990-PRO-4TB-NVME_CUDA-13.0_580.95.05_Linux-6.11.0-1016-nvidia",
  },
];

describe("identity: the same host registers with the original agent's strings", () => {
  it.each(ROWS)("$host", async (row) => {
    const m = await makeFakeMachine({ files: row.files, commands: row.commands, ...(row.os ? { os: row.os } : {}) });
    const libraryPath =
      row.nvml === undefined ? "/nonexistent/libnvidia-ml.so.1" : (await fakeNvmlEnv(row.nvml)).KITT_NVML_PATH;
    const info = await detectSystem({ host: m.host, nvml: { libraryPath } }).finally(() => m.cleanup());

    expect(info.gpu_info).toBe(row.gpu_info);
    expect(info.fingerprint).toBe(row.fingerprint);
    const sent = JSON.parse(info.hardware_details) as Record<string, unknown>;
    expect(sent).toMatchObject({ ...row.details, fingerprint: row.fingerprint });
    expect(info.cpu_info).toBe(sent.cpu_model);
    expect(info.ram_gb).toBe(sent.ram_gb);
    expect(info.gpu_count).toBe(sent.gpu_count);
  });
});
