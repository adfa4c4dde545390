import path from "node:path";
import { link, lstat, mkdir, readdir, rename, stat, unlink } from "node:fs/promises";
import type { CopyFileFn } from "./copy-pool.js";
import { StorageError, errnoCode, reason } from "./errors.js";
import { sameMtime, writeManifest, type Manifest } from "./manifest.js";
import { OWNER_MARKER, markOwned, removeOwned } from "./ownership.js";
import { ProgressTracker, type StagingProgress } from "./progress.js";
import type { SourceFile, SourceTree } from "./source-scan.js";
import { stagingPathFor, trashPathFor } from "./storage-layout.js";

export interface CopyPlan {
  /** Files whose local copy already matches (size and mtime): hard-linked into the staging dir. */
  reuse: SourceFile[];
  /** Files to copy from the share, largest first so that big shards start early. */
  copy: SourceFile[];
  bytesToCopy: number;
}

/**
 * Compare the share's files with an existing local copy (which may lack a
 * manifest or be stale). With `reuseExisting` false (a copy that may have lost
 * data in a crash, see durability.ts) every file is copied.
 */
export async function planCopy(tree: SourceTree, dest: string, reuseExisting = true): Promise<CopyPlan> {
  const plan: CopyPlan = { reuse: [], copy: [], bytesToCopy: 0 };
  for (const f of tree.files) {
    let same = false;
    if (reuseExisting) {
      try {
        const st = await lstat(path.join(dest, f.rel));
        same = st.isFile() && st.size === f.size && sameMtime(st.mtimeMs, f.mtimeMs);
      } catch {
        // Not there: copy it.
      }
    }
    if (same) plan.reuse.push(f);
    else {
      plan.copy.push(f);
      plan.bytesToCopy += f.size;
    }
  }
  plan.copy.sort((a, b) => b.size - a.size);
  return plan;
}

/**
 * Why `dest`, which exists without a completion manifest (the agent did not
 * stage it), may not be replaced; undefined when replacing it loses nothing:
 * a directory holding only the model's directories and files that match the
 * share's (those are kept by hard link). Anything else may be a user's.
 */
export async function foreignDestProblem(dest: string, tree: SourceTree, plan: CopyPlan): Promise<string | undefined> {
  const kept = new Set(plan.reuse.map((f) => f.rel));
  const dirs = new Set(tree.dirs);
  let budget = tree.files.length + dirs.size;
  const refuse = (why: string): string =>
    `refusing to replace ${dest}: the agent did not stage it (no completion manifest) and ${why}; move it away and retry`;
  const walk = async (dir: string, relDir: string): Promise<string | undefined> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const rel = relDir === "" ? e.name : `${relDir}/${e.name}`;
      if (--budget < 0) return refuse("it holds more than the model");
      if (e.isDirectory() && dirs.has(rel)) {
        const inner = await walk(path.join(dir, e.name), rel);
        if (inner !== undefined) return inner;
      } else if (!(e.isFile() && kept.has(rel))) {
        return refuse(`it holds ${rel}, which is not an unchanged copy of the share's`);
      }
    }
    return undefined;
  };
  let st;
  try {
    st = await lstat(dest);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return undefined;
    throw err;
  }
  if (!st.isDirectory()) return refuse("it is not a directory");
  return walk(dest, "");
}

export interface ExecuteOptions {
  model: string;
  tree: SourceTree;
  plan: CopyPlan;
  dest: string;
  manifest: Omit<Manifest, "files" | "total_bytes" | "completed_at">;
  concurrency: number;
  copyFile: CopyFileFn;
  now: () => number;
  signal: AbortSignal;
  onProgress: (p: StagingProgress) => void;
  log: (line: string) => void;
  progressIntervalMs: number;
  logIntervalMs: number;
  /** Told the staging path before anything is written there, so that cleanup leaves it alone. */
  onStagingDir: (dir: string) => void;
}

function cancelled(model: string): StorageError {
  return new StorageError("STAGING_CANCELLED", `staging of ${model} was cancelled`);
}

/** How often a file that changes on the share while it is copied is copied again before staging fails. */
export const MAX_COPY_ATTEMPTS = 3;

interface Stamp {
  size: number;
  mtimeMs: number;
  ino: number;
  ctimeMs: number;
}

async function stampOf(file: string): Promise<Stamp> {
  const st = await stat(file);
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, ctimeMs: st.ctimeMs };
}

const sameStamp = (a: Stamp, b: Stamp): boolean =>
  a.size === b.size && sameMtime(a.mtimeMs, b.mtimeMs) && a.ino === b.ino && a.ctimeMs === b.ctimeMs;

/**
 * Copy one share file and prove it did not change meanwhile: its size,
 * mtime, inode and ctime are the same after the copy as before, and the copy
 * has that size. Otherwise copy it again; after MAX_COPY_ATTEMPTS, fail. The
 * file's entry (for the manifest) takes the version that was copied.
 */
async function copyChecked(o: ExecuteOptions, f: SourceFile, to: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const before = await stampOf(f.abs);
    await o.copyFile(f.abs, to, before.mtimeMs);
    if (o.signal.aborted) return;
    const after = await stampOf(f.abs).catch(() => undefined);
    const copied = (await lstat(to)).size;
    if (after !== undefined && sameStamp(before, after) && copied === before.size) {
      if (before.size !== f.size || !sameMtime(before.mtimeMs, f.mtimeMs)) {
        o.log(`${f.rel} changed on the share since it was listed; copied its current version`);
        f.size = before.size;
        f.mtimeMs = before.mtimeMs;
      }
      return;
    }
    if (attempt >= MAX_COPY_ATTEMPTS) {
      throw new StorageError(
        "STAGING_FAILED",
        `${f.abs} changed on the share while it was copied, ${attempt} times in a row; retry when the share is stable`,
      );
    }
    o.log(`${f.rel} changed on the share while it was copied; copying it again (attempt ${attempt + 1} of ${MAX_COPY_ATTEMPTS})`);
    await unlink(to); // the copy creates its file exclusively
  }
}

/** Hard-link an unchanged local file into the staging dir; false when that is not possible or the share changed since. */
async function linkUnchanged(o: ExecuteOptions, f: SourceFile, to: string): Promise<boolean> {
  try {
    await link(path.join(o.dest, f.rel), to);
  } catch {
    return false; // a filesystem without hard links: copy it after all
  }
  const now = await stampOf(f.abs).catch(() => undefined);
  if (now !== undefined && now.size === f.size && sameMtime(now.mtimeMs, f.mtimeMs)) return true;
  // Never copy over the link: that would write into the old copy's file.
  await unlink(to);
  return false;
}

async function runPool(o: ExecuteOptions, staging: string, tracker: ProgressTracker): Promise<void> {
  const queue: Array<{ f: SourceFile; reuse: boolean }> = [
    ...o.plan.reuse.map((f) => ({ f, reuse: true })),
    ...o.plan.copy.map((f) => ({ f, reuse: false })),
  ];
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    try {
      await drain();
    } catch (err) {
      failed = true;
      throw err;
    }
  };
  const drain = async (): Promise<void> => {
    while (next < queue.length && !o.signal.aborted && !failed) {
      const item = queue[next++];
      if (item === undefined) break;
      const to = path.join(staging, item.f.rel);
      if (item.reuse) {
        if (!(await linkUnchanged(o, item.f, to))) await copyChecked(o, item.f, to);
        continue;
      }
      tracker.fileStarted(to, item.f.size);
      await copyChecked(o, item.f, to);
      tracker.fileDone(to);
    }
  };
  const workers = Math.max(1, Math.min(o.concurrency, queue.length));
  await Promise.all(Array.from({ length: workers }, worker));
}

/**
 * Build the model in a hidden staging directory next to `dest`, write the
 * manifest last (fsynced, with the copy's id and boot), then rename it into
 * place (an old copy is renamed aside first and deleted after). Any failure
 * or cancel removes the staging directory, so `dest` is either the old state
 * or the complete new model. The files are not fsynced here: the caller makes
 * the copy durable in the background (durability.ts).
 */
export async function executeCopy(o: ExecuteOptions): Promise<void> {
  const staging = stagingPathFor(o.dest);
  o.onStagingDir(staging);
  const tracker = new ProgressTracker({
    model: o.model,
    filesTotal: o.plan.copy.length,
    bytesTotal: o.plan.bytesToCopy,
    now: o.now,
    emit: o.onProgress,
    log: o.log,
    logIntervalMs: o.logIntervalMs,
  });
  const removeStaging = (): Promise<void> => removeOwned(staging);
  let abortListener: (() => void) | undefined;
  const ticker = setInterval(() => tracker.report(), o.progressIntervalMs);
  ticker.unref();
  try {
    if (o.signal.aborted) throw cancelled(o.model);
    await mkdir(path.dirname(o.dest), { recursive: true });
    await mkdir(staging);
    await markOwned(staging);
    // Parents come before children in tree.dirs; non-recursive mkdir so that
    // nothing re-creates the staging dir after a cancel removed it.
    for (const d of o.tree.dirs) {
      if (o.signal.aborted) throw cancelled(o.model);
      await mkdir(path.join(staging, d));
    }
    // A cancel cannot interrupt a kernel copy in progress, so do not wait for
    // it: reject now and remove the staging dir under the in-flight copies.
    const aborted = new Promise<never>((_, reject) => {
      abortListener = () => reject(cancelled(o.model));
      o.signal.addEventListener("abort", abortListener, { once: true });
    });
    const pool = runPool(o, staging, tracker);
    pool.catch(() => {});
    aborted.catch(() => {});
    await Promise.race([pool, aborted]);
    if (o.signal.aborted) throw cancelled(o.model);

    const files = o.tree.files.map((f) => ({ path: f.rel, size: f.size, mtime_ms: f.mtimeMs }));
    await writeManifest(staging, {
      ...o.manifest,
      total_bytes: files.reduce((sum, f) => sum + f.size, 0),
      completed_at: new Date(o.now()).toISOString(),
      files,
    });
    // The manifest now proves the dir ours; the marker must not end up in the model.
    await unlink(path.join(staging, OWNER_MARKER));
    if (o.signal.aborted) throw cancelled(o.model);

    let trash: string | undefined;
    try {
      await lstat(o.dest);
      trash = trashPathFor(o.dest);
      await rename(o.dest, trash);
    } catch (err) {
      if (errnoCode(err) !== "ENOENT") throw err;
    }
    try {
      await rename(staging, o.dest);
    } catch (err) {
      if (trash !== undefined) await rename(trash, o.dest).catch(() => {});
      throw err;
    }
    if (trash !== undefined) {
      await markOwned(trash);
      await removeOwned(trash);
    }
    tracker.report();
  } catch (err) {
    await removeStaging().catch(() => {});
    if (err instanceof StorageError) throw err;
    if (errnoCode(err) === "ENOSPC") {
      throw new StorageError("NO_SPACE", `disk full while staging ${o.model} into ${path.dirname(o.dest)}`, { cause: err });
    }
    throw new StorageError("STAGING_FAILED", `staging ${o.model} into ${o.dest} failed: ${reason(err)}`, { cause: err });
  } finally {
    clearInterval(ticker);
    if (abortListener !== undefined) o.signal.removeEventListener("abort", abortListener);
  }
}
