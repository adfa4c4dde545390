import path from "node:path";
import { randomBytes } from "node:crypto";
import { lstat, open, readdir, rename, rm, rmdir } from "node:fs/promises";
import { MANIFEST_NAME, readManifest, type Manifest } from "./manifest.js";

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

export interface StorageScan {
  models: StagedModel[];
  leftovers: string[];
}

/**
 * Walk the storage dir for staged models (directories holding a manifest; not
 * descended into) and leftover staging/trash directories. Symlinks are not
 * followed: a link out of storage must never be taken as ours.
 */
export async function scanStorage(storageDir: string): Promise<StorageScan> {
  const scan: StorageScan = { models: [], leftovers: [] };
  const walk = async (dir: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    if (depth > 0 && entries.some((e) => e.name === MANIFEST_NAME && e.isFile())) {
      const manifest = await readManifest(dir);
      if (manifest !== undefined) {
        scan.models.push({ dir, manifest });
        return;
      }
    }
    if (depth >= MAX_MODEL_DEPTH) return;
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const child = path.join(dir, e.name);
      if (isLeftoverName(e.name)) scan.leftovers.push(child);
      else await walk(child, depth + 1);
    }
  };
  await walk(storageDir, 0);
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
 * Remove `target` so that it is never seen half-deleted: rename it to a hidden
 * trash sibling first (atomic), then delete that.
 */
export async function renameThenDelete(target: string): Promise<void> {
  const trash = trashPathFor(target);
  await rename(target, trash);
  await rm(trash, { recursive: true, force: true });
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
