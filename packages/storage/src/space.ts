import path from "node:path";
import { stat, statfs } from "node:fs/promises";
import { StorageError, reason } from "./errors.js";
import { MANIFEST_NAME } from "./manifest.js";
import { formatSize } from "./progress.js";
import { isSameOrInside } from "./path-guard.js";
import { scanStorage, type StagedModel, type WalkLimits } from "./storage-layout.js";

/** Bytes available to us (not root's reserve) on the filesystem holding `dir`. */
export type FreeSpaceFn = (dir: string) => Promise<number>;

export const defaultFreeSpace: FreeSpaceFn = async (dir) => {
  const st = await statfs(dir);
  return st.bavail * st.bsize;
};

/** Kept free beyond the model itself: a full disk breaks the benchmark's own writes. */
export const DEFAULT_SPACE_MARGIN_BYTES = 1024 ** 3;

/** `16.1 GiB`, `32.0 MiB`: binary units, as every size the agent prints. */
export const gb = formatSize;

/** Last use of a staged model: its manifest's mtime, bumped on every lease. */
export async function lastUsedMs(model: StagedModel): Promise<number> {
  try {
    return (await stat(path.join(model.dir, MANIFEST_NAME))).mtimeMs;
  } catch {
    return 0;
  }
}

export interface SpaceRequest {
  model: string;
  /** Where the staging dir goes (an existing directory on the target filesystem). */
  dir: string;
  dest: string;
  needed: number;
  margin: number;
  storageDir: string;
  autoCleanup: boolean;
  freeSpace: FreeSpaceFn;
  /** Remove one staged model if nothing uses it; false when it was busy. */
  evict: (modelDir: string) => Promise<boolean>;
  log: (line: string) => void;
  walk: WalkLimits;
}

/**
 * Make sure `needed` bytes plus the margin are free, evicting the least
 * recently used staged models first when auto-cleanup is on. Throws NO_SPACE
 * with the figures otherwise.
 */
export async function ensureSpace(r: SpaceRequest): Promise<void> {
  const want = r.needed + r.margin;
  let free = await r.freeSpace(r.dir);
  if (free >= want) return;

  let evicted = 0;
  let evictedBytes = 0;
  if (r.autoCleanup) {
    const scan = await scanStorage(r.storageDir, r.walk);
    const candidates = scan.models.filter((m) => !isSameOrInside(m.dir, r.dest) && !isSameOrInside(r.dest, m.dir));
    const withUse = await Promise.all(candidates.map(async (m) => ({ m, used: await lastUsedMs(m) })));
    withUse.sort((a, b) => a.used - b.used);
    for (const { m } of withUse) {
      if (free >= want) break;
      let removed = false;
      try {
        removed = await r.evict(m.dir);
      } catch (err) {
        r.log(`could not evict ${m.dir}: ${reason(err)}`);
      }
      if (!removed) continue;
      evicted++;
      evictedBytes += m.manifest.total_bytes;
      r.log(`Evicted unused model ${m.manifest.source} (${gb(m.manifest.total_bytes)}) to make room for ${r.model}`);
      free = await r.freeSpace(r.dir);
    }
  }
  if (free >= want) return;
  const after = evicted > 0 ? ` after evicting ${evicted} unused model(s), ${gb(evictedBytes)}` : "";
  const hint = r.autoCleanup ? "" : " (auto_cleanup is off)";
  throw new StorageError(
    "NO_SPACE",
    `not enough space to stage ${r.model} in ${r.storageDir}: need ${gb(r.needed)} + ${gb(r.margin)} margin, free ${gb(free)}${after}${hint}`,
  );
}
