import type { StagingProgress } from "@kitt/storage";

/** `Qwen3-8B [########............] 41% 6.6/16.1 GiB 1.8 GiB/s ETA 5s` in at most `columns` characters. */
export function progressBar(p: StagingProgress, columns = 80): string {
  const ratio = p.bytesTotal === 0 ? 1 : Math.min(1, p.bytesDone / p.bytesTotal);
  const unit = p.bytesTotal >= 1024 ** 3 ? { div: 1024 ** 3, name: "GiB" } : { div: 1024 ** 2, name: "MiB" };
  const eta = p.etaSeconds === undefined ? "ETA ?" : `ETA ${Math.max(0, Math.round(p.etaSeconds))}s`;
  const rate = `${(p.bytesPerSecond / unit.div).toFixed(1)} ${unit.name}/s`;
  const tail = ` ${Math.floor(ratio * 100)}% ${(p.bytesDone / unit.div).toFixed(1)}/${(p.bytesTotal / unit.div).toFixed(1)} ${unit.name} ${rate} ${eta}`;
  const room = Math.max(10, Math.min(40, columns - tail.length - p.model.length - 4));
  const filled = Math.round(ratio * room);
  return `${p.model} [${"#".repeat(filled)}${".".repeat(room - filled)}]${tail}`.slice(0, Math.max(20, columns - 1));
}
