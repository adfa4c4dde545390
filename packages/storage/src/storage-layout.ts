import path from "node:path";
import { randomBytes } from "node:crypto";
import { lstat, open, readdir, rename, rmdir } from "node:fs/promises";
import { MANIFEST_NAME, readManifest, type Manifest } from "./manifest.js";
import { isOwnedLeftover, markOwned, removeOwned } from "./ownership.js";

// Hidden siblings of the destination, so that the final rename stays on one
// filesystem and nothing that scans for models mistakes them for one.
const STAGING_MARK = ".kitt-staging-";
const TRASH_MARK = ".kitt-trash-";
const LEFTOVER = /^\..*\.kitt-(staging|trash)-[0-9a-f]{12}$/;

/** How deep below the storage dir models may nest (`hf/Qwen/Qwen3-8B` is 3). */
export const MAX_MODEL_DEPTH = 8;

function sibling(dest: string, mark: string): string {
  return path.join(path.dirname(dest), `.${path.basename(dest)}${mark}${randomBytes(6).toString("hex")}`);
}

export const stagingPathFor = (dest: string): string => sibling(dest, STAGING_MARK);
export const trashPathFor = (dest: string): string => sibling(dest, TRASH_MARK);

/** True for a staging or trash directory name, which never names a model. */
export function isLeftoverName(name: string): boolean {
  return LEFTOVER.test(name);
}

/** The outermost staging or trash directory `p` (inside `storage`) is or lies in, if any. */
export function leftoverContaining(storage: string, p: string): string | undefined {
  const parts = path.relative(storage, p).split(path.sep);
  const i = parts.findIndex(isLeftoverName);
  return i < 0 ? undefined : path.join(storage, ...parts.slice(0, i + 1));
}

export interface StagedModel {
  dir: string;
  manifest: Manifest;
}

/** Bounds of a walk over the storage dir: a huge tree someone put there must not stall status or staging. */
export interface WalkLimits {
  /** Directory entries read before the walk stops. */
  maxEntries: number;
  maxMs: number;
  /** Monotonic milliseconds (default performance.now). */
  now: () => number;
}

export const DEFAULT_WALK_LIMITS: Omit<WalkLimits, "now"> = { maxEntries: 100_000, maxMs: 2_000 };

export interface StorageScan {
  models: StagedModel[];
  /** Staging and trash directories the agent made (see ownership.ts): safe to remove. */
  leftovers: string[];
  /** Directories named like leftovers that the agent did not make: never touched. */
  foreign: string[];
  /** With `bytes`: bytes of regular files outside staged models (leftovers, markers, others' files). */
  otherBytes: number;
  /** Set when the walk hit a limit; the lists and bytes are then partial. */
  cutShort: string | undefined;
}

/**
 * Walk the storage dir for staged models (directories holding a manifest; not
 * descended into) and leftover staging/trash directories, within `limits`.
 * Symlinks are not followed: a link out of storage must never be taken as
 * ours. With `bytes`, also sums the files outside models (lstat each).
 */
export async function scanStorage(storageDir: string, limits: WalkLimits, options: { bytes?: boolean } = {}): Promise<StorageScan> {
  const scan: StorageScan = { models: [], leftovers: [], foreign: [], otherBytes: 0, cutShort: undefined };
  const bytes = options.bytes === true;
  const deadline = limits.now() + limits.maxMs;
  let seen = 0;
  const over = (): boolean => {
    if (scan.cutShort !== undefined) return true;
    if (seen > limits.maxEntries) scan.cutShort = `after ${limits.maxEntries} entries`;
    else if (limits.now() > deadline) scan.cutShort = `after ${(limits.maxMs / 1000).toFixed(1)} s`;
    return scan.cutShort !== undefined;
  };
  const walk = async (dir: string, depth: number, findModels: boolean): Promise<void> => {
    if (over()) return;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    seen += entries.length;
    if (findModels && depth > 0 && entries.some((e) => e.name === MANIFEST_NAME && e.isFile())) {
      const manifest = await readManifest(dir);
      if (manifest !== undefined) {
        scan.models.push({ dir, manifest });
        return;
      }
    }
    const deeper = findModels && depth < MAX_MODEL_DEPTH;
    for (const e of entries) {
      if (over()) return;
      const child = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (findModels && isLeftoverName(e.name)) {
          if (await isOwnedLeftover(child)) scan.leftovers.push(child);
          else scan.foreign.push(child);
          if (bytes) await walk(child, depth + 1, false);
        } else if (deeper || bytes) {
          await walk(child, depth + 1, deeper);
        }
      } else if (bytes && e.isFile()) {
        try {
          scan.otherBytes += (await lstat(child)).size;
        } catch {
          // gone meanwhile
        }
      }
    }
  };
  await walk(storageDir, 0, true);
  return scan;
}

/** Bytes of regular files under `p` (not following symlinks). */
export async function treeBytes(p: string): Promise<number> {
  let st;
  try {
    st = await lstat(p);
  } catch {
    return 0;
  }
  if (st.isFile()) return st.size;
  if (!st.isDirectory()) return 0;
  let total = 0;
  let names: string[];
  try {
    names = await readdir(p);
  } catch {
    return 0;
  }
  for (const name of names) total += await treeBytes(path.join(p, name));
  return total;
}

/** fsync a directory so that the names created in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Remove `target` (a staged model or an owned leftover) so that it is never
 * seen half-deleted: rename it to a hidden trash sibling first (atomic), mark
 * that as the agent's, then delete it marker last.
 */
export async function renameThenDelete(target: string): Promise<void> {
  const trash = trashPathFor(target);
  await rename(target, trash);
  await markOwned(trash);
  await removeOwned(trash);
}

/** Remove empty directories from `dir` up to (not including) `stopAt`. */
export async function pruneEmptyParents(dir: string, stopAt: string): Promise<void> {
  let current = dir;
  while (current !== stopAt && current.startsWith(stopAt + path.sep)) {
    try {
      await rmdir(current);
    } catch {
      return;
    }
    current = path.dirname(current);
  }
}
