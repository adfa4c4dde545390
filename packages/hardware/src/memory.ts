import { readHostFile, runOnHost, type HostProbe } from "./host.js";
import { succeeded } from "./run-command.js";
import { GIB } from "./units.js";

/** Total RAM in bytes from /proc/meminfo, else the OS's figure. */
export async function detectRamBytes(host: HostProbe): Promise<number> {
  const text = host.os.platform === "linux" ? await readHostFile(host, "/proc/meminfo") : undefined;
  const kb = text === undefined ? undefined : /^MemTotal:\s+(\d+)\s*kB/m.exec(text)?.[1];
  return kb === undefined ? host.os.totalMemBytes : Number(kb) * 1024;
}

/** `ram_gb`: whole GiB, rounded as the original agent did. */
export function ramGb(bytes: number): number {
  return Math.round(bytes / GIB);
}

const RAM_TYPE = /\b(LPDDR\dX?|DDR\d|HBM\de?)\b/i;

function normaliseType(raw: string): string {
  const upper = raw.toUpperCase();
  return upper.endsWith("E") && upper.startsWith("HBM") ? `${upper.slice(0, -1)}e` : upper;
}

/** The most common type among populated slots of `dmidecode -t memory`. */
export function parseDmidecodeMemory(text: string): string {
  const counts = new Map<string, number>();
  for (const device of text.split(/\n(?=Memory Device)/)) {
    if (!device.startsWith("Memory Device")) continue;
    if (/^\s*Size:\s*(No Module Installed|0\b|Not Installed)/im.test(device)) continue;
    const type = /^\s*Type:\s*(.+)$/m.exec(device)?.[1]?.trim() ?? "";
    const match = RAM_TYPE.exec(type);
    if (match?.[1] === undefined) continue;
    const name = normaliseType(match[1]);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  let best = "";
  let bestCount = 0;
  for (const [name, count] of counts) {
    if (count > bestCount) [best, bestCount] = [name, count];
  }
  return best;
}

/** The first memory type named in `lshw -class memory` descriptions. */
export function parseLshwMemory(text: string): string {
  for (const line of text.split("\n")) {
    if (!/^\s*description:/.test(line)) continue;
    const match = RAM_TYPE.exec(line);
    if (match?.[1] !== undefined) return normaliseType(match[1]);
  }
  return "";
}

/** The original agent's order: the first of these contained in the type ("LPDDR5X" reads as "DDR5"). */
const ORIGINAL_RAM_TYPES = ["DDR5", "DDR4", "DDR3", "LPDDR5X", "LPDDR5", "LPDDR4"];

/** `ram_type` as the original agent reports a detected type (it is part of the fingerprint); "" for HBM and unknown. */
export function originalRamType(type: string): string {
  return ORIGINAL_RAM_TYPES.find((t) => type.includes(t)) ?? "";
}

/**
 * RAM type, best effort: both tools read the DMI tables, which need root, so
 * an unprivileged agent usually learns nothing and the type is left out.
 * No `sudo`: a password prompt must never block detection.
 */
export async function detectRamType(host: HostProbe): Promise<string> {
  if (host.os.platform !== "linux") return "";
  const dmi = await runOnHost(host, "dmidecode", ["-t", "memory"]);
  if (succeeded(dmi)) {
    const type = parseDmidecodeMemory(dmi.stdout);
    if (type !== "") return type;
  }
  const lshw = await runOnHost(host, "lshw", ["-class", "memory"]);
  return succeeded(lshw) ? parseLshwMemory(lshw.stdout) : "";
}
