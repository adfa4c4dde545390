import os from "node:os";
import { mkdir } from "node:fs/promises";
import { silentLogger, type Logger } from "@kitt/protocol";
import { sharedCopyPool, type CopyFileFn } from "./copy-pool.js";
import { fsyncModel, readBootId, type MakeDurableFn } from "./durability.js";
import { runCommand, type RunCommand } from "./run-command.js";
import { DEFAULT_MOUNT_TIMEOUTS, type MountTimeouts } from "./share-mount.js";
import { DEFAULT_SEARCH_LIMITS, type SearchLimits } from "./share-lookup.js";
import { DEFAULT_SPACE_MARGIN_BYTES, defaultFreeSpace, type FreeSpaceFn } from "./space.js";
import { DEFAULT_WALK_LIMITS, type WalkLimits } from "./storage-layout.js";

/** Seams and tunables; every one has a production default. */
export interface ModelStoreOptions {
  logger?: Logger;
  /** Runs `mount`, `sudo`, `mountpoint`. */
  runCommand?: RunCommand;
  /** Environment for those commands (PATH decides which executables run). */
  env?: NodeJS.ProcessEnv;
  /** Default `/proc/self/mountinfo`. */
  mountInfoPath?: string;
  /** Creates the mount point without privileges; default `fs.mkdir(dir, { recursive: true })`. */
  mkdir?: (dir: string) => Promise<void>;
  mountTimeouts?: Partial<MountTimeouts>;
  /** Decides whether `mount -t nfs` runs directly (0, root) or through `sudo -n`; default process.getuid(). */
  uid?: number;
  /** Default fs.statfs (bytes available to unprivileged users). */
  freeSpace?: FreeSpaceFn;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** Files copied at once; default 4. */
  copyConcurrency?: number;
  /** Copies one file; default: fs.copyFileSync in worker threads (see copy-pool.ts). */
  copyFile?: CopyFileFn;
  /** Makes a staged copy durable in the background; default: fsync of its files and directories on the copy pool. */
  makeDurable?: MakeDurableFn;
  /** This kernel boot's id; default /proc/sys/kernel/random/boot_id. A copy from another boot without its durable marker is copied afresh. */
  bootId?: () => Promise<string | undefined>;
  /** For relative model paths; default process.cwd(). */
  cwd?: string;
  /** For `~` in settings; default os.homedir(). */
  homeDir?: string;
  search?: Partial<Omit<SearchLimits, "now">>;
  /** Free space kept beyond the model; default 1 GiB. */
  spaceMarginBytes?: number;
  /** How often onProgress fires during a copy; default 1000 ms. */
  progressIntervalMs?: number;
  /** How often a progress line is logged; default 5000 ms. */
  logIntervalMs?: number;
  /** Bounds of walks over the storage dir (usage, cleanup, eviction, startup); default 100,000 entries, 2 s. */
  walk?: Partial<WalkLimits>;
  /** How long comparing a staged copy with the share may take before the copy is used unchecked; default 10 s. */
  shareCheckMs?: number;
}

export interface StoreDeps {
  logger: Logger;
  runCommand: RunCommand;
  env: NodeJS.ProcessEnv;
  mountInfoPath: string;
  mkdir: (dir: string) => Promise<void>;
  mountTimeouts: MountTimeouts;
  uid: number;
  freeSpace: FreeSpaceFn;
  now: () => number;
  copyConcurrency: number;
  copyFile: CopyFileFn;
  makeDurable: MakeDurableFn;
  bootId: () => Promise<string | undefined>;
  cwd: string;
  homeDir: string;
  search: SearchLimits;
  spaceMarginBytes: number;
  progressIntervalMs: number;
  logIntervalMs: number;
  walk: WalkLimits;
  shareCheckMs: number;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number, got ${value}`);
  return value;
}

function memo<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

export function resolveDeps(o: ModelStoreOptions): StoreDeps {
  const now = o.now ?? Date.now;
  const copyConcurrency = Math.floor(positive("copyConcurrency", o.copyConcurrency ?? 4));
  return {
    logger: o.logger ?? silentLogger,
    runCommand: o.runCommand ?? runCommand,
    env: o.env ?? process.env,
    mountInfoPath: o.mountInfoPath ?? "/proc/self/mountinfo",
    mkdir:
      o.mkdir ??
      (async (dir) => {
        await mkdir(dir, { recursive: true });
      }),
    mountTimeouts: { ...DEFAULT_MOUNT_TIMEOUTS, ...o.mountTimeouts },
    uid: o.uid ?? process.getuid?.() ?? -1,
    freeSpace: o.freeSpace ?? defaultFreeSpace,
    now,
    copyConcurrency,
    copyFile: o.copyFile ?? sharedCopyPool(copyConcurrency).copyFile,
    makeDurable: o.makeDurable ?? fsyncModel(sharedCopyPool(copyConcurrency).fsyncAll),
    bootId: memo(o.bootId ?? (() => readBootId())),
    cwd: o.cwd ?? process.cwd(),
    homeDir: o.homeDir ?? os.homedir(),
    search: { ...DEFAULT_SEARCH_LIMITS, ...o.search, now },
    spaceMarginBytes: o.spaceMarginBytes ?? DEFAULT_SPACE_MARGIN_BYTES,
    progressIntervalMs: positive("progressIntervalMs", o.progressIntervalMs ?? 1000),
    logIntervalMs: o.logIntervalMs ?? 5000,
    walk: { ...DEFAULT_WALK_LIMITS, now: () => performance.now(), ...o.walk },
    shareCheckMs: positive("shareCheckMs", o.shareCheckMs ?? 10_000),
  };
}
