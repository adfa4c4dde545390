/** Text as real machines produce it, trimmed to the fields the parsers read. */

/** x86 /proc/cpuinfo: `sockets` packages of `cores` cores, `smt` threads each. */
export function x86Cpuinfo(model: string, sockets: number, cores: number, smt: number): string {
  const blocks: string[] = [];
  let processor = 0;
  for (let t = 0; t < smt; t++) {
    for (let s = 0; s < sockets; s++) {
      for (let c = 0; c < cores; c++) {
        blocks.push(
          [
            `processor\t: ${processor++}`,
            "vendor_id\t: AuthenticAMD",
            `model name\t: ${model}`,
            `physical id\t: ${s}`,
            `siblings\t: ${cores * smt}`,
            `core id\t\t: ${c}`,
            `cpu cores\t: ${cores}`,
            "flags\t\t: fpu vme de pse",
          ].join("\n"),
        );
      }
    }
  }
  return `${blocks.join("\n\n")}\n\n`;
}

function armBlock(processor: number, implementer: string, part: string): string {
  return [
    `processor\t: ${processor}`,
    "BogoMIPS\t: 2000.00",
    "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32",
    `CPU implementer\t: ${implementer}`,
    "CPU architecture: 8",
    "CPU variant\t: 0x0",
    `CPU part\t: ${part}`,
    "CPU revision\t: 0",
  ].join("\n");
}

/** NVIDIA Grace: 72 Neoverse-V2 cores. */
export const GRACE_CPUINFO = `${Array.from({ length: 72 }, (_, i) => armBlock(i, "0x41", "0xd4f")).join("\n\n")}\n`;

/** DGX Spark GB10: 10 Cortex-X925 + 10 Cortex-A725. */
export const SPARK_CPUINFO = `${Array.from({ length: 20 }, (_, i) => armBlock(i, "0x41", i < 10 ? "0xd85" : "0xd87")).join("\n\n")}\n`;

export function meminfo(kb: number): string {
  return `MemTotal:       ${kb} kB\nMemFree:        1000000 kB\nMemAvailable:   2000000 kB\n`;
}

export const DMIDECODE_DDR5 = `# dmidecode 3.5
Getting SMBIOS data from sysfs.
SMBIOS 3.5.0 present.

Handle 0x0040, DMI type 16, 23 bytes
Physical Memory Array
\tLocation: System Board Or Motherboard
\tNumber Of Devices: 4

Handle 0x0041, DMI type 17, 92 bytes
Memory Device
\tSize: 32 GB
\tForm Factor: DIMM
\tLocator: DIMM_A1
\tType: DDR5
\tType Detail: Synchronous Registered (Buffered)
\tSpeed: 4800 MT/s

Handle 0x0042, DMI type 17, 92 bytes
Memory Device
\tSize: No Module Installed
\tForm Factor: DIMM
\tLocator: DIMM_A2
\tType: Unknown

Handle 0x0043, DMI type 17, 92 bytes
Memory Device
\tSize: 32 GB
\tLocator: DIMM_B1
\tType: DDR5
\tType Detail: Synchronous Registered (Buffered)
`;

export const LSHW_DDR4 = `  *-firmware
       description: BIOS
  *-memory
       description: System Memory
       size: 64GiB
     *-bank:0
          description: DIMM DDR4 Synchronous Unbuffered (Unregistered) 3200 MHz (0.3 ns)
          size: 32GiB
`;

/** nvidia-smi 570 on an H200 with the detection query's fields. */
export function smiDetectCsv(count: number, name = "NVIDIA H200", mib = "143771", cc = "9.0"): string {
  return Array.from(
    { length: count },
    (_, i) =>
      `${i}, ${name}, GPU-${String(i).padStart(8, "0")}-1111-2222-3333-444444444444, 00000000:${(0x18 + i).toString(16).toUpperCase()}:00.0, ${mib}, 570.86.15, ${cc}`,
  ).join("\n") + "\n";
}

export const NVCC_12_8 = `nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2025 NVIDIA Corporation
Built on Fri_Feb_21_20:23:50_PST_2025
Cuda compilation tools, release 12.8, V12.8.93
Build cuda_12.8.r12.8/compiler.35583870_0
`;

/** mountinfo with "/" on the given device. */
export function mountinfo(rootSource: string, fstype = "ext4"): string {
  return [
    "22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw",
    `27 1 259:2 / / rw,relatime shared:1 - ${fstype} ${rootSource} rw,errors=remount-ro`,
    "30 27 259:1 / /boot/efi rw,relatime shared:3 - vfat /dev/nvme0n1p1 rw",
  ].join("\n") + "\n";
}

/**
 * The RAM, storage, CUDA, driver and OS details the original agent reports for
 * the H200 test hosts (DDR5 DIMMs, a Samsung NVMe, nvcc 12.8, driver 570.86.15).
 */
export const ORIGINAL_H200_HOST_TAIL = {
  ram_type: "DDR5",
  storage_brand: "Samsung",
  storage_model: "SAMSUNG MZ1L21T9HCLS-00A07",
  storage_type: "nvme",
  cuda_version: "12.8",
  driver_version: "570.86.15",
  os: "Linux-6.8.0-45-generic",
  kernel: "#45-Ubuntu SMP PREEMPT_DYNAMIC Fri Aug 30 12:02:04 UTC 2024",
};
