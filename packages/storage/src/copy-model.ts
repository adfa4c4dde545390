import path from "node:path";
import { link, lstat, mkdir, rename, rm } from "node:fs/promises";
import type { CopyFileFn } from "./copy-pool.js";
import { StorageError, errnoCode, reason } from "./errors.js";
import { sameMtime, writeManifest, type Manifest } from "./manifest.js";
import { ProgressTracker, type StagingProgress } from "./progress.js";
import type { SourceFile, SourceTree } from "./source-scan.js";
import { fsyncDir, stagingPathFor, trashPathFor } from "./storage-layout.js";

export interface CopyPlan {
  /** Files whose local copy already matches (size and mtime): hard-linked into the staging dir. */
  reuse: SourceFile[];
  /** Files to copy from the share, largest first so that big shards start early. */
  copy: SourceFile[];
  bytesToCopy: number;
}

/** Compare the share's files with an existing local copy (which may lack a manifest or be stale). */
export async function planCopy(tree: SourceTree, dest: string): Promise<CopyPlan> {
  const plan: CopyPlan = { reuse: [], copy: [], bytesToCopy: 0 };
  for (const f of tree.files) {
    let same = false;
    try {
      const st = await lstat(path.join(dest, f.rel));
      same = st.isFile() && st.size === f.size && sameMtime(st.mtimeMs, f.mtimeMs);
    } catch {
      // Not there: copy it.
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
        try {
          await link(path.join(o.dest, item.f.rel), to);
        } catch {
          // A filesystem without hard links: copy it after all.
          await o.copyFile(item.f.abs, to, item.f.mtimeMs);
        }
        continue;
      }
      tracker.fileStarted(to, item.f.size);
      await o.copyFile(item.f.abs, to, item.f.mtimeMs);
      // The manifest promises this size: a file changed on the share mid-copy must not be sealed as complete.
      const copied = (await lstat(to)).size;
      if (copied !== item.f.size) {
        throw new StorageError(
          "STAGING_FAILED",
          `${item.f.abs} changed on the share while it was copied (${item.f.size} bytes listed, ${copied} copied); retry`,
        );
      }
      tracker.fileDone(to);
    }
  };
  const workers = Math.max(1, Math.min(o.concurrency, queue.length));
  await Promise.all(Array.from({ length: workers }, worker));
}

/**
 * Build the model in a hidden staging directory next to `dest`, fsync its
 * files and directories, write the manifest last, then rename it into place
 * (an old copy is renamed aside first and deleted after). Any failure or
 * cancel removes the staging directory, so `dest` is either the old state or
 * the complete new model.
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
  const removeStaging = (): Promise<void> => rm(staging, { recursive: true, force: true, maxRetries: 5 });
  let abortListener: (() => void) | undefined;
  const ticker = setInterval(() => tracker.report(), o.progressIntervalMs);
  ticker.unref();
  try {
    if (o.signal.aborted) throw cancelled(o.model);
    await mkdir(path.dirname(o.dest), { recursive: true });
    await mkdir(staging);
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

    for (const d of [...o.tree.dirs].reverse()) await fsyncDir(path.join(staging, d));
    const files = o.tree.files.map((f) => ({ path: f.rel, size: f.size, mtime_ms: f.mtimeMs }));
    await writeManifest(staging, {
      ...o.manifest,
      total_bytes: o.tree.totalBytes,
      completed_at: new Date(o.now()).toISOString(),
      files,
    });
    await fsyncDir(staging);
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
    await fsyncDir(path.dirname(o.dest));
    if (trash !== undefined) await rm(trash, { recursive: true, force: true, maxRetries: 5 });
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
