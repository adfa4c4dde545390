import path from "node:path";
import type { Logger } from "@kitt/protocol";
import { reason } from "./errors.js";
import { lstat } from "node:fs/promises";
import { LEGACY_NOTE, legacyCopies } from "./legacy.js";
import { lastUsedMs, type FreeSpaceFn } from "./space.js";
import { pruneEmptyParents, renameThenDelete, scanStorage, treeBytes, type StorageScan, type WalkLimits } from "./storage-layout.js";
import type { UseRegistry } from "./uses.js";

export interface CleanupResult {
  removed: string;
  freed_bytes: number;
}

export interface CleanupAllResult {
  removed: string[];
  /** Staged models left alone because a running job uses them. */
  in_use: string[];
  /** Removals that failed, with the reason. */
  failed: string[];
  freed_bytes: number;
  /** Set when the walk over the storage dir hit its limit: run it again for the rest. */
  partial?: string;
}

export interface StagedModelUsage {
  path: string;
  /** Path on the share it was staged from, relative to the share root. */
  source: string;
  size_bytes: number;
  size_gb: number;
  /** ISO time of the last resolve or release; null if unknown. */
  last_used: string | null;
  in_use: boolean;
}

/** A flat copy the original agent left (no manifest): listed and evictable, never used until verified. */
export interface LegacyCopyUsage {
  path: string;
  size_bytes: number;
  size_gb: number;
  /** ISO mtime of the directory; null if unknown. */
  modified: string | null;
  note: string;
}

export interface StorageUsage {
  storage_dir: string;
  used_gb: number;
  free_gb: number;
  used_bytes: number;
  free_bytes: number;
  model_count: number;
  models: StagedModelUsage[];
  /** Legacy copies of the original agent (counted in used bytes, not in model_count). */
  legacy: LegacyCopyUsage[];
  /**
   * Set when the walk over the storage dir hit its entry or time limit (a
   * huge tree someone else put there): the figures and list are then partial.
   */
  partial?: string;
}

/** GiB with two decimals: what the original agent put in the heartbeat (storage_gb_free), and what every human figure prints. */
const toGb = (bytes: number): number => Math.round((bytes / 1024 ** 3) * 100) / 100;

/**
 * Remove `dir` (already checked to be inside storage) unless it is in use:
 * claim, rename aside, delete, prune empty parents. Returns the bytes freed,
 * or undefined when something uses it.
 */
export async function cleanupIn(
  uses: UseRegistry,
  storage: string,
  dir: string,
  why: "cleanup" | "evict",
  logger: Logger,
): Promise<number | undefined> {
  if (!uses.claimRemoval(dir)) return undefined;
  try {
    const bytes = await treeBytes(dir);
    await renameThenDelete(dir);
    logger.info(`${why === "evict" ? "evicted" : "removed"} ${dir}`, { freed_bytes: bytes });
    await pruneEmptyParents(path.dirname(dir), storage);
    return bytes;
  } finally {
    uses.endRemoval(dir);
  }
}

function walkNote(scan: StorageScan): string | undefined {
  return scan.cutShort === undefined ? undefined : `the walk over the storage dir stopped ${scan.cutShort}`;
}

export async function cleanupAllIn(uses: UseRegistry, storage: string, logger: Logger, limits: WalkLimits): Promise<CleanupAllResult> {
  const result: CleanupAllResult = { removed: [], in_use: [], failed: [], freed_bytes: 0 };
  const scan = await scanStorage(storage, limits);
  const partial = walkNote(scan);
  if (partial !== undefined) result.partial = partial;
  // Leftovers first: a model's staging sibling would otherwise block pruning its parent.
  const legacy = await legacyCopies(storage, limits);
  for (const dir of [...scan.leftovers, ...scan.models.map((m) => m.dir), ...legacy]) {
    try {
      const freed = await cleanupIn(uses, storage, dir, "cleanup", logger);
      if (freed === undefined) result.in_use.push(dir);
      else {
        result.removed.push(dir);
        result.freed_bytes += freed;
      }
    } catch (err) {
      result.failed.push(`${dir}: ${reason(err)}`);
    }
  }
  return result;
}

/**
 * Used bytes are the staged models' manifests plus every other file found
 * (leftovers, markers, files someone put there), within `limits`.
 */
export async function usageOf(uses: UseRegistry, storage: string, freeSpace: FreeSpaceFn, limits: WalkLimits): Promise<StorageUsage> {
  const scan = await scanStorage(storage, limits, { bytes: true });
  const models = await Promise.all(
    scan.models.map(async (m): Promise<StagedModelUsage> => {
      const used = await lastUsedMs(m);
      return {
        path: m.dir,
        source: m.manifest.source,
        size_bytes: m.manifest.total_bytes,
        size_gb: toGb(m.manifest.total_bytes),
        last_used: used > 0 ? new Date(used).toISOString() : null,
        in_use: uses.isBusy(m.dir),
      };
    }),
  );
  const legacy = await Promise.all(
    (await legacyCopies(storage, limits)).map(async (dir): Promise<LegacyCopyUsage> => {
      const bytes = await treeBytes(dir);
      const mtime = await lstat(dir).then((st) => new Date(st.mtimeMs).toISOString(), () => null);
      return { path: dir, size_bytes: bytes, size_gb: toGb(bytes), modified: mtime, note: LEGACY_NOTE };
    }),
  );
  // Legacy bytes are already in otherBytes (files outside staged models).
  const used = scan.otherBytes + models.reduce((sum, m) => sum + m.size_bytes, 0);
  const free = await freeSpace(storage);
  const partial = walkNote(scan);
  return {
    storage_dir: storage,
    used_gb: toGb(used),
    free_gb: toGb(free),
    used_bytes: used,
    free_bytes: free,
    model_count: models.length,
    models,
    legacy,
    ...(partial !== undefined ? { partial } : {}),
  };
}
