export const GIB = 1024 ** 3;

/** Bytes to GiB with two decimals, the telemetry precision of the original agent. */
export function gib2(bytes: number): number {
  return Math.round((bytes / GIB) * 100) / 100;
}
