export const GIB = 1024 ** 3;

/** Bytes to GiB with two decimals, the telemetry precision of the original agent. */
export function gib2(bytes: number): number {
  return Math.round((bytes / GIB) * 100) / 100;
}

/** "250 ms", "15 s", "3 min": for messages about limits. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`;
  return `${Math.round(ms / 60_000)} min`;
}
