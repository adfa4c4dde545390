import { listHostDir, readHostFile, runOnHost, type HostProbe } from "./host.js";
import { succeeded } from "./run-command.js";

/** The storage fields of `hardware_details`, as the original agent computes them (they are part of the fingerprint). */
export interface StorageIdentity {
  /** A brand of the original's list, "Unknown" when none is in the model; "" without storage. */
  storage_brand: string;
  /** The drive's raw model string, trimmed: "SAMSUNG MZ1L21T9HCLS-00A07". */
  storage_model: string;
  /** "nvme" or "ssd"; "" without storage. */
  storage_type: string;
}

const NO_STORAGE: StorageIdentity = { storage_brand: "", storage_model: "", storage_type: "" };

/** The original's brand list, in its order; "Western Digital" is reported as "WD". */
const KNOWN_BRANDS = ["Samsung", "WD", "Western Digital", "Intel", "Crucial", "Kingston", "SK hynix", "Seagate", "Micron"];

/** The first known brand contained in `model`, ignoring case; else "Unknown". */
export function originalStorageBrand(model: string): string {
  const lower = model.toLowerCase();
  const brand = KNOWN_BRANDS.find((b) => lower.includes(b.toLowerCase()));
  return brand === undefined ? "Unknown" : brand === "Western Digital" ? "WD" : brand;
}

/**
 * Natural order (nvme2n1 before nvme10n1): runs of digits compare as
 * numbers, the rest by code unit. Not localeCompare with `numeric`: its ICU
 * collator maps about 3 MiB of ICU data into the agent that runs for months.
 */
export function byNumber(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  // 1 and 01: the same number; fewer leading zeros first, if nothing else differs.
  let zeros = 0;
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i] as string;
    const y = pb[i] as string;
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) {
      const nx = x.replace(/^0+(?=\d)/, "");
      const ny = y.replace(/^0+(?=\d)/, "");
      if (nx.length !== ny.length) return nx.length - ny.length;
      if (nx !== ny) return nx < ny ? -1 : 1;
      if (zeros === 0) zeros = x.length - y.length;
      continue;
    }
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length || zeros;
}

/** `lsblk -d -o NAME,TYPE,MODEL`: the first row after the header with a model (a third column). */
export function firstLsblkModel(text: string): StorageIdentity | undefined {
  for (const line of text.split("\n").slice(1)) {
    const parts = line.trim().split(/\s+/);
    const [name = "", , ...model] = parts;
    if (model.length === 0) continue;
    const joined = model.join(" ");
    return { storage_brand: originalStorageBrand(joined), storage_model: joined, storage_type: name.includes("nvme") ? "nvme" : "ssd" };
  }
  return undefined;
}

/**
 * The storage identity by the original agent's rule: the model of the first
 * NVMe block device (`/sys/block/nvme*` in name order, `device/model`), else
 * the first disk `lsblk -d -o NAME,TYPE,MODEL` lists with a model.
 */
export async function detectStorageIdentity(host: HostProbe): Promise<StorageIdentity> {
  if (host.os.platform !== "linux") return NO_STORAGE;
  const first = (await listHostDir(host, "/sys/block")).filter((name) => name.startsWith("nvme")).sort(byNumber)[0];
  if (first !== undefined) {
    const model = (await readHostFile(host, `/sys/block/${first}/device/model`))?.trim();
    if (model !== undefined) return { storage_brand: originalStorageBrand(model), storage_model: model, storage_type: "nvme" };
  }
  const lsblk = await runOnHost(host, "lsblk", ["-d", "-o", "NAME,TYPE,MODEL"]);
  return (succeeded(lsblk) ? firstLsblkModel(lsblk.stdout) : undefined) ?? NO_STORAGE;
}
