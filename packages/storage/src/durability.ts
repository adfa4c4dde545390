import path from "node:path";
import { randomBytes } from "node:crypto";
import { lstat, open, readFile, readdir, rename } from "node:fs/promises";
import type { Logger } from "@kitt/protocol";
import { reason } from "./errors.js";
import { DURABLE_MARKER, readManifest, type Manifest } from "./manifest.js";
import { fsyncDir } from "./storage-layout.js";

const DURABLE_TEMP = `${DURABLE_MARKER}.tmp`;

/**
 * Makes the model at `modelDir` (files, directories and its entry in the
 * parents up to `storageDir`) durable; rejects when it cannot. `signal`
 * aborts between files (a shutdown that will not wait).
 */
export type MakeDurableFn = (modelDir: string, storageDir: string, signal: AbortSignal) => Promise<void>;

/** A fresh id for a copy, recorded in its manifest and its durable marker. */
export const newCopyId = (): string => randomBytes(8).toString("hex");

/** This kernel boot's id; undefined where the kernel has none (then every copy not yet durable is verified). */
export async function readBootId(file = "/proc/sys/kernel/random/boot_id"): Promise<string | undefined> {
  try {
    const id = (await readFile(file, "utf8")).trim();
    return id === "" ? undefined : id;
  } catch {
    return undefined;
  }
}

/**
 * How far a staged copy may be trusted:
 * - `durable`: on stable storage (its marker matches, or an older agent
 *   fsynced it before writing its manifest, which then has no copy_id);
 * - `this-boot`: written since the kernel last booted and complete per its
 *   manifest, so the page cache holds every byte even if the disk does not yet:
 *   usable, and made durable in the background;
 * - `unverified`: written in an earlier boot and never marked durable: the
 *   machine went down before the data reached the disk, so files may be
 *   short or hold zeros at their listed size. Never used; copied afresh.
 */
export type Trust = "durable" | "this-boot" | "unverified";

export async function trustOf(dir: string, manifest: Manifest, bootId: string | undefined): Promise<Trust> {
  if (manifest.copy_id === undefined) return "durable";
  try {
    const marker = JSON.parse(await readFile(path.join(dir, DURABLE_MARKER), "utf8")) as { copy_id?: unknown };
    if (marker.copy_id === manifest.copy_id) return "durable";
  } catch {
    // no marker, or a torn one: not durable
  }
  return bootId !== undefined && manifest.boot_id === bootId ? "this-boot" : "unverified";
}

/** Atomically write the durable marker: temp file, fsync, rename, fsync the directory. */
export async function writeDurableMarker(dir: string, copyId: string, now: number): Promise<void> {
  const temp = path.join(dir, DURABLE_TEMP);
  const handle = await open(temp, "w", 0o644);
  try {
    await handle.writeFile(JSON.stringify({ kind: "kitt-durable", copy_id: copyId, durable_at: new Date(now).toISOString() }) + "\n");
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path.join(dir, DURABLE_MARKER));
  await fsyncDir(dir);
}

/** Files under `dir` (symlinks not followed), then its directories deepest first, then its parents up to `stopAt`. */
export async function durabilityOrder(dir: string, stopAt: string): Promise<string[]> {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = async (d: string): Promise<void> => {
    dirs.push(d);
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  const st = await lstat(dir);
  if (st.isDirectory()) await walk(dir);
  else files.push(dir);
  const parents: string[] = [];
  for (let d = path.dirname(dir); d.startsWith(stopAt + path.sep) || d === stopAt; d = path.dirname(d)) {
    parents.push(d);
    if (d === stopAt) break;
  }
  return [...files, ...dirs.reverse(), ...parents];
}

/**
 * The production MakeDurableFn: fsync every file and directory of the model
 * and its parents, one path per job on `fsyncAll` (the copy pool's worker
 * threads: no libuv pool thread is held for seconds), so an abort stops
 * between paths. Measured against one `sync -f <dir>` (syncfs) on ext4 for 1
 * GiB in 104 files: the same time (bench/staging/README.md); this reports
 * write-back errors on every kernel (syncfs only since Linux 5.8) and flushes
 * nothing but the model.
 */
export function fsyncModel(fsyncAll: (paths: readonly string[]) => Promise<void>): MakeDurableFn {
  return async (dir, storageDir, signal) => {
    for (const p of await durabilityOrder(dir, storageDir)) {
      if (signal.aborted) throw new Error("abandoned: the store is closing");
      await fsyncAll([p]);
    }
  };
}

interface Pending {
  copyId: string;
  done: Promise<void>;
}

export interface DurabilityDeps {
  makeDurable: MakeDurableFn;
  logger: Logger;
  now: () => number;
}

/**
 * Background durability of staged copies: each is made durable (see
 * MakeDurableFn), then, if the directory still holds the same copy (a
 * cleanup or a newer copy may have replaced it meanwhile; neither waits for
 * this), its durable marker is written. Failures are logged and leave the
 * copy without a marker: usable in this boot, copied afresh after a reboot.
 */
export class DurabilityQueue {
  private readonly pending = new Map<string, Pending>();
  private readonly deps: DurabilityDeps;
  private readonly controller = new AbortController();
  /** Copies this process completed: complete in the page cache whatever the boot id says. */
  private readonly known = new Set<string>();

  constructor(deps: DurabilityDeps) {
    this.deps = deps;
  }

  /** Make the copy `copyId` at `dir` durable in the background (once per copy at a time). */
  schedule(dir: string, storageDir: string, copyId: string): void {
    this.known.add(copyId);
    if (this.controller.signal.aborted) return;
    const current = this.pending.get(dir);
    if (current?.copyId === copyId) return;
    const previous = current?.done ?? Promise.resolve();
    const done = previous.then(() => this.run(dir, storageDir, copyId));
    const entry = { copyId, done };
    this.pending.set(dir, entry);
    void done.finally(() => {
      if (this.pending.get(dir) === entry) this.pending.delete(dir);
    });
  }

  /** Whether this process completed (or already trusted) the copy `copyId`. */
  knows(copyId: string | undefined): boolean {
    return copyId !== undefined && this.known.has(copyId);
  }

  private async run(dir: string, storageDir: string, copyId: string): Promise<void> {
    const { signal } = this.controller;
    try {
      if (signal.aborted) return;
      if ((await readManifest(dir))?.copy_id !== copyId) return; // replaced or removed
      await this.deps.makeDurable(dir, storageDir, signal);
      if (signal.aborted || (await readManifest(dir))?.copy_id !== copyId) return;
      await writeDurableMarker(dir, copyId, this.deps.now());
    } catch (err) {
      if (signal.aborted) return;
      // A copy removed meanwhile is no failure.
      if ((await readManifest(dir))?.copy_id !== copyId) return;
      this.deps.logger.warn(`could not make the staged copy ${dir} durable: ${reason(err)}; it is used until the machine restarts, then copied afresh`);
    }
  }

  /** Wait until every copy scheduled so far (and any scheduled meanwhile) is durable or failed. */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending.values()].map((p) => p.done));
  }

  /**
   * Stop scheduling; wait up to `waitMs` for the passes in progress, then
   * abandon them (they stop after the path being fsynced). A copy left
   * without its marker is made durable by the next store that opens in this
   * boot, or copied afresh after a reboot. Resolves true when nothing was abandoned.
   */
  async close(waitMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const flushed = this.flush().then(() => true);
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), waitMs);
    });
    const all = await Promise.race([flushed, late]);
    clearTimeout(timer);
    // The store is closing: no pass may start after this.
    this.controller.abort();
    if (!all) await this.flush();
    return all;
  }
}
