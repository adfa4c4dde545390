import { listHostDir, readHostFile, runOnHost, type HostProbe } from "./host.js";
import { succeeded } from "./run-command.js";
import { identifyDrive } from "./storage-brand.js";

export interface StorageInfo {
  /** "" when unknown. */
  brand: string;
  /** Normalised model (what the fingerprint shows); "" when unknown. */
  model: string;
  /** The drive's own model string. */
  rawModel: string;
  /** "nvme", "ssd", "hdd"; "" when unknown. */
  type: string;
  /** Kernel name of the device: "nvme0", "sda". */
  device: string;
}

const NO_STORAGE: StorageInfo = { brand: "", model: "", rawModel: "", type: "", device: "" };

/** The block device mounted at "/", from mountinfo ("/dev/nvme0n1p2"); undefined for overlay, tmpfs... */
export function rootDevice(mountinfo: string): string | undefined {
  for (const line of mountinfo.split("\n")) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    const [left, right] = line.split(" - ");
    if (left === undefined || right === undefined) continue;
    if (left.split(" ")[4] !== "/") continue;
    const source = right.split(" ")[1];
    if (source?.startsWith("/dev/")) return source.slice("/dev/".length);
  }
  return undefined;
}

/** "nvme0n1p2" -> "nvme0"; "sda3" -> "sda"; "vda" -> "vda". */
export function diskOf(partition: string): { nvmeController?: string; disk: string } {
  const nvme = /^(nvme\d+)n\d+(p\d+)?$/.exec(partition);
  if (nvme?.[1] !== undefined) return { nvmeController: nvme[1], disk: partition.replace(/p\d+$/, "") };
  return { disk: partition.replace(/(?<=[a-z])\d+$/, "") };
}

async function fromNvmeSysfs(host: HostProbe, preferred: string | undefined): Promise<StorageInfo | undefined> {
  const controllers = (await listHostDir(host, "/sys/class/nvme"))
    .filter((name) => /^nvme\d+$/.test(name))
    .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  const ordered = preferred !== undefined && controllers.includes(preferred)
    ? [preferred, ...controllers.filter((c) => c !== preferred)]
    : controllers;
  for (const controller of ordered) {
    const rawModel = (await readHostFile(host, `/sys/class/nvme/${controller}/model`))?.trim() ?? "";
    if (rawModel === "") continue;
    const vendor = (await readHostFile(host, `/sys/class/nvme/${controller}/device/vendor`)) ?? "";
    return { ...identifyDrive(rawModel, vendor), rawModel, type: "nvme", device: controller };
  }
  return undefined;
}

/** Parses `lsblk -P` lines: KEY="value" pairs, non-printables as \xHH. */
export function parseLsblkPairs(text: string): Record<string, string>[] {
  const rows: Record<string, string>[] = [];
  for (const line of text.split("\n")) {
    const row: Record<string, string> = {};
    for (const match of line.matchAll(/([A-Z0-9_:.-]+)="((?:[^"\\]|\\.)*)"/g)) {
      const [, key = "", value = ""] = match;
      row[key] = value.replace(/\\x([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))).trim();
    }
    if (Object.keys(row).length > 0) rows.push(row);
  }
  return rows;
}

const VIRTUAL_DISK = /^(loop|zram|ram|sr|fd|nbd|md|dm-|rbd)/;

async function lsblkDisks(host: HostProbe): Promise<Record<string, string>[]> {
  const result = await runOnHost(host, "lsblk", ["-d", "-P", "-o", "NAME,MODEL,VENDOR,ROTA,TRAN,TYPE"]);
  if (!succeeded(result)) return [];
  return parseLsblkPairs(result.stdout).filter(
    (row) => (row.TYPE ?? "disk") === "disk" && !VIRTUAL_DISK.test(row.NAME ?? "") && (row.MODEL ?? "") !== "",
  );
}

function fromLsblkRow(disk: Record<string, string>): StorageInfo {
  const rawModel = disk.MODEL ?? "";
  const identity = identifyDrive(rawModel);
  // lsblk's VENDOR is "ATA" for every SATA disk; it only helps when it is a brand itself.
  const brand = identity.brand !== "" ? identity.brand : identifyDrive(disk.VENDOR ?? "").brand;
  const name = disk.NAME ?? "";
  const type =
    disk.TRAN === "nvme" || name.startsWith("nvme") ? "nvme" : disk.ROTA === "0" ? "ssd" : disk.ROTA === "1" ? "hdd" : "";
  return { brand, model: identity.model, rawModel, type, device: name };
}

/**
 * The primary drive: the one holding "/" when that is a plain partition, else
 * the first NVMe controller, else the first physical disk lsblk lists.
 */
export async function detectStorage(host: HostProbe): Promise<StorageInfo> {
  if (host.os.platform !== "linux") return NO_STORAGE;
  const mountinfo = await readHostFile(host, "/proc/self/mountinfo");
  const root = mountinfo === undefined ? undefined : rootDevice(mountinfo);
  const rootDisk = root === undefined ? undefined : diskOf(root);
  let disks: Promise<Record<string, string>[]> | undefined;
  const listDisks = (): Promise<Record<string, string>[]> => (disks ??= lsblkDisks(host));

  // "/" on a SATA or virtio disk beats an NVMe data drive.
  if (rootDisk !== undefined && rootDisk.nvmeController === undefined) {
    const onRoot = (await listDisks()).find((row) => row.NAME === rootDisk.disk);
    if (onRoot !== undefined) return fromLsblkRow(onRoot);
  }
  const nvme = await fromNvmeSysfs(host, rootDisk?.nvmeController);
  if (nvme !== undefined) return nvme;
  const first = (await listDisks())[0];
  return first === undefined ? NO_STORAGE : fromLsblkRow(first);
}
