/**
 * koffi hands 64-bit integers back as a number when they fit in 2^53 and as a
 * BigInt beyond; callers only ever see numbers (bytes lose precision only
 * past 8 PiB).
 */
export function toNumber(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  throw new TypeError(`expected a number from NVML, got ${typeof value}`);
}

/** nvmlSystemGetCudaDriverVersion's integer (1000 * major + 10 * minor) as "12.8". */
export function formatCudaVersion(version: number): string {
  if (!Number.isInteger(version) || version <= 0) {
    throw new RangeError(`not a CUDA driver version: ${version}`);
  }
  const major = Math.floor(version / 1000);
  const minor = Math.floor((version % 1000) / 10);
  return `${major}.${minor}`;
}

/** The NUL-terminated string NVML wrote into `buffer`. */
export function readCString(buffer: Buffer): string {
  const end = buffer.indexOf(0);
  return buffer.toString("utf8", 0, end === -1 ? buffer.length : end);
}

/**
 * nvmlDeviceGetPciInfo_v3 reports "00000000:1B:00.0"; the legacy field (and
 * older drivers) use a four-digit domain. One form for everyone downstream.
 */
export function normalizePciBusId(busId: string): string {
  const match = /^([0-9a-fA-F]{1,8}):([0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])$/.exec(busId.trim());
  if (!match) return busId.trim();
  return `${match[1]!.padStart(8, "0")}:${match[2]!.toUpperCase()}`;
}
