import { readHostFile, type HostProbe } from "./host.js";

export interface CpuInfo {
  /** Brand string ("AMD EPYC 9124 16-Core Processor"); "" when unknown. */
  model: string;
  /** Physical cores; 0 when unknown. */
  cores: number;
  /** Logical CPUs; 0 when unknown. */
  threads: number;
}

/** Docker's platform naming for `uname -m` values (kitt-protocol.md: cpu_arch). */
export function dockerArch(machine: string): string {
  const m = machine.toLowerCase();
  if (m === "x86_64" || m === "amd64" || m === "x64") return "amd64";
  if (m === "aarch64" || m === "arm64" || m === "armv8l") return "arm64";
  if (m.startsWith("armv7") || m.startsWith("armv6") || m === "arm") return "arm";
  if (m === "i386" || m === "i686" || m === "x86") return "386";
  return m; // ppc64le, s390x, riscv64 are spelled the same in both worlds.
}

// Arm CPUs name no model in /proc/cpuinfo, only implementer and part numbers.
// Only the parts found in GPU servers and workstations; others show their numbers.
const ARM_IMPLEMENTERS: Record<string, string> = {
  "0x41": "ARM",
  "0x4e": "NVIDIA",
  "0x51": "Qualcomm",
  "0x61": "Apple",
  "0x48": "HiSilicon",
  "0xc0": "Ampere",
};
const ARM_PARTS: Record<string, string> = {
  "0x41:0xd0c": "Neoverse-N1",
  "0x41:0xd40": "Neoverse-V1",
  "0x41:0xd49": "Neoverse-N2",
  "0x41:0xd4f": "Neoverse-V2",
  "0x41:0xd84": "Neoverse-V3",
  "0x41:0xd8e": "Neoverse-N3",
  "0x41:0xd41": "Cortex-A78",
  "0x41:0xd42": "Cortex-A78AE",
  "0x41:0xd81": "Cortex-A720",
  "0x41:0xd85": "Cortex-X925",
  "0x41:0xd87": "Cortex-A725",
  "0x4e:0x004": "Carmel",
  "0xc0:0xac3": "AmpereOne",
};

function armModel(blocks: Map<string, string>[]): string {
  const vendors = new Set<string>();
  const parts: string[] = [];
  for (const block of blocks) {
    const implementer = block.get("CPU implementer")?.toLowerCase();
    const part = block.get("CPU part")?.toLowerCase();
    if (implementer === undefined || part === undefined) continue;
    vendors.add(ARM_IMPLEMENTERS[implementer] ?? `implementer ${implementer}`);
    const name = ARM_PARTS[`${implementer}:${part}`] ?? `part ${part}`;
    if (!parts.includes(name)) parts.push(name);
  }
  if (parts.length === 0) return "";
  // Big.little chips (DGX Spark's GB10: Cortex-X925 + Cortex-A725) list every core type.
  return `${[...vendors].join("/")} ${parts.join(" + ")}`;
}

function parseBlocks(text: string): Map<string, string>[] {
  return text
    .split(/\n\s*\n/)
    .map((chunk) => {
      const block = new Map<string, string>();
      for (const line of chunk.split("\n")) {
        const colon = line.indexOf(":");
        if (colon < 0) continue;
        block.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      return block;
    })
    .filter((block) => block.has("processor"));
}

/** Parses /proc/cpuinfo (x86 and Arm layouts). */
export function parseCpuinfo(text: string): CpuInfo {
  const blocks = parseBlocks(text);
  const threads = blocks.length;
  const brand = blocks.find((b) => (b.get("model name") ?? "") !== "")?.get("model name");
  const model = (brand ?? armModel(blocks)).replace(/\s+/g, " ").trim();

  // x86 names each logical CPU's package and core; distinct pairs are the
  // physical cores. Arm has no SMT in these machines and no core ids.
  const cores = new Set<string>();
  for (const b of blocks) {
    const core = b.get("core id");
    if (core !== undefined) cores.add(`${b.get("physical id") ?? "0"}:${core}`);
  }
  return { model, cores: cores.size > 0 ? cores.size : threads, threads };
}

export async function detectCpu(host: HostProbe): Promise<CpuInfo> {
  const text = host.os.platform === "linux" ? await readHostFile(host, "/proc/cpuinfo") : undefined;
  const parsed = text === undefined ? undefined : parseCpuinfo(text);
  if (parsed !== undefined && parsed.threads > 0) {
    return { ...parsed, model: parsed.model !== "" ? parsed.model : host.os.cpuModel };
  }
  // No /proc: the OS's view, which cannot tell cores from threads.
  return { model: host.os.cpuModel, cores: host.os.cpuCount, threads: host.os.cpuCount };
}
