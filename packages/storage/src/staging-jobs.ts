import path from "node:path";
import type { Logger } from "@kitt/protocol";
import { StorageError, reason } from "./errors.js";
import { executeCopy, foreignDestProblem, planCopy } from "./copy-model.js";
import { existsSync } from "node:fs";
import { mkdir, rename } from "node:fs/promises";
import { manifestMatchesDisk, readManifest } from "./manifest.js";
import { isLegacyCopy, sealAdopted, verifyLegacy } from "./legacy.js";
import { fsyncDir, renameThenDelete } from "./storage-layout.js";
import { isStrictlyInside } from "./path-guard.js";
import { newCopyId, trustOf } from "./durability.js";
import { formatDuration, formatRate, type StagingProgress } from "./progress.js";
import type { StorageSettings } from "./settings.js";
import type { ShareMatch } from "./share-lookup.js";
import { scanSource, treeDifferences, type SourceTree } from "./source-scan.js";
import { ensureSpace, gb } from "./space.js";
import type { StoreDeps } from "./store-options.js";
import type { UseRegistry } from "./uses.js";

export interface ResolveOptions {
  /** Lines for the job's log (mount attempts, progress every few seconds, evictions). */
  onLog?: (line: string) => void;
  onProgress?: (p: StagingProgress) => void;
  /** Abort to cancel; a copy shared with other jobs goes on until all of them cancel. */
  signal?: AbortSignal;
  /** Compare an already staged model with the share and update it incrementally. */
  refresh?: boolean;
}

/**
 * The caller's callbacks, made safe to call from timers and fan-out loops: one
 * that throws is reported once and must not crash the process or the copy.
 */
export function guardCallbacks(opts: ResolveOptions, logger: Logger): ResolveOptions {
  let reported = false;
  const guard = <T>(fn: ((arg: T) => void) | undefined): ((arg: T) => void) | undefined =>
    fn === undefined
      ? undefined
      : (arg) => {
          try {
            fn(arg);
          } catch (err) {
            if (!reported) logger.warn(`a staging progress/log callback threw: ${reason(err)}`);
            reported = true;
          }
        };
  return { ...opts, onLog: guard(opts.onLog), onProgress: guard(opts.onProgress) };
}

/** How a model path was resolved. */
export type ResolvedHow = "staged" | "storage" | "copied" | "as-is" | "registry";

export interface ResolvedModel {
  /** What to run the benchmark against: a local directory, a file, or a registry name. */
  path: string;
  how: ResolvedHow;
  /** The staged model directory in storage, when the path is in storage. */
  modelDir: string | undefined;
  /** Ends this job's use of the model so cleanup may remove it. Idempotent. */
  release(): void;
}

export interface StageRequest {
  modelPath: string;
  match: ShareMatch;
  settings: StorageSettings;
  /** Real path of the storage dir. */
  storage: string;
  shareRootReal: string;
}

export interface StagingContext {
  deps: StoreDeps;
  uses: UseRegistry;
  /** Lease a complete model in storage, or undefined if it is being removed. */
  lease: (modelDir: string, entry: string, how: ResolvedHow) => ResolvedModel | undefined;
  /** Wait for pending last-use stamps. */
  settle: () => Promise<void>;
  /** Remove an unused staged model from `storage` for space; false when busy. */
  evict: (storage: string, modelDir: string) => Promise<boolean>;
  /** Make the copy `copyId` at `modelDir` durable in the background. */
  durable: (modelDir: string, storage: string, copyId: string) => void;
}

interface Waiter {
  onLog: ((line: string) => void) | undefined;
  onProgress: ((p: StagingProgress) => void) | undefined;
  resolve: (model: ResolvedModel) => void;
  reject: (err: unknown) => void;
  detach: () => void;
}

interface Job {
  dest: string;
  waiters: Set<Waiter>;
  controller: AbortController;
  /** Settles when the job has finished, its staging dir removed or renamed into place. */
  finished: Promise<void>;
}

/** The job's log line for a copy that may have lost data in a crash (durability.ts). */
export function unverifiedLine(dir: string): string {
  return `${dir} was staged before the machine restarted and never made durable (its files may be short or hold zeros): not using it; copying it afresh`;
}

async function refuseNesting(storage: string, dest: string): Promise<void> {
  for (let d = path.dirname(dest); isStrictlyInside(storage, d); d = path.dirname(d)) {
    const m = await readManifest(d);
    if (m !== undefined) {
      throw new StorageError("STAGING_FAILED", `cannot stage into ${dest}: it is inside the staged model ${d} (${m.source})`);
    }
  }
}

/** Copies from the share, one per destination: concurrent resolves of a model share it. */
export class StagingJobs {
  private readonly jobs = new Map<string, Job>();
  private readonly ctx: StagingContext;

  constructor(ctx: StagingContext) {
    this.ctx = ctx;
  }

  destFor(storage: string, match: ShareMatch): string {
    const dest = path.join(storage, ...match.rel.split("/"));
    if (!isStrictlyInside(storage, dest)) {
      throw new StorageError("STAGING_FAILED", `refusing to stage ${match.rel}: ${dest} is not inside ${storage}`);
    }
    return dest;
  }

  stage(req: StageRequest, opts: ResolveOptions): Promise<ResolvedModel> {
    const dest = this.destFor(req.storage, req.match);
    let job = this.jobs.get(dest);
    const joined = job !== undefined;
    if (job === undefined) {
      job = { dest, waiters: new Set(), controller: new AbortController(), finished: Promise.resolve() };
      this.jobs.set(dest, job);
    }
    const current = job;
    const result = new Promise<ResolvedModel>((resolve, reject) => {
      const waiter: Waiter = { onLog: opts.onLog, onProgress: opts.onProgress, resolve, reject, detach: () => {} };
      const signal = opts.signal;
      current.waiters.add(waiter);
      if (signal === undefined) return;
      const leave = (): void => {
        waiter.detach();
        if (!current.waiters.delete(waiter)) return;
        const err = new StorageError("STAGING_CANCELLED", `staging of ${path.basename(dest)} was cancelled`);
        if (current.waiters.size > 0) return reject(err);
        // The last one out stops the copy and returns once its staging dir is gone.
        current.controller.abort();
        void current.finished.then(() => reject(err));
      };
      if (signal.aborted) return leave();
      signal.addEventListener("abort", leave, { once: true });
      waiter.detach = () => signal.removeEventListener("abort", leave);
    });
    if (joined) opts.onLog?.(`Waiting for the copy of ${path.basename(dest)} already in progress`);
    else current.finished = this.run(current, req);
    return result;
  }

  private async run(job: Job, req: StageRequest): Promise<void> {
    const { deps, uses } = this.ctx;
    const { dest } = job;
    const model = path.basename(req.match.rel);
    const log = (line: string, level: "info" | "warn" = "info"): void => {
      deps.logger[level](line, { model: req.match.rel });
      for (const w of job.waiters) w.onLog?.(line);
    };
    // Someone running the old copy: it may be used as is if current, never replaced under them.
    const busy = uses.isBusy(dest);
    const holds = [uses.hold(dest)];
    try {
      await refuseNesting(req.storage, dest);
      const tree = await scanSource(req.modelPath, req.match, req.shareRootReal, (m) => log(m, "warn"));
      await this.legacy(dest, req, tree, log, busy);
      const existing = await readManifest(dest);
      const trust = existing === undefined ? undefined : await trustOf(dest, existing, await deps.bootId());
      if (trust === "unverified") log(unverifiedLine(dest), "warn");
      const upToDate =
        existing !== undefined &&
        trust !== "unverified" &&
        treeDifferences(existing, tree) === 0 &&
        (await manifestMatchesDisk(dest, existing));
      if (!upToDate) {
        if (busy) {
          throw new StorageError("MODEL_IN_USE", `${dest} differs from the share but a running job uses it; retry when it ends`);
        }
        await this.copy(job, req, tree, model, log, holds, { owned: existing !== undefined, reuse: trust !== "unverified" });
      } else {
        log(`${model} is already staged and matches the share`);
        if (trust === "this-boot" && existing.copy_id !== undefined) this.ctx.durable(dest, req.storage, existing.copy_id);
      }
      const entry = tree.type === "file" && tree.files[0] !== undefined ? path.join(dest, tree.files[0].rel) : dest;
      for (const w of job.waiters) {
        w.detach();
        const leased = this.ctx.lease(dest, entry, upToDate ? "staged" : "copied");
        if (leased === undefined) w.reject(new StorageError("STAGING_FAILED", `${dest} was removed while staging`));
        else w.resolve(leased);
      }
    } catch (err) {
      for (const w of job.waiters) {
        w.detach();
        w.reject(err);
      }
    } finally {
      job.waiters.clear();
      this.jobs.delete(dest);
      for (const release of holds) release();
    }
  }

  /**
   * A flat copy the original agent left at `<storage>/<basename>`: adopted
   * (moved to `dest` if needed, manifest written, no byte copied) when it
   * matches the share file for file; removed when it is a copy of this model
   * that no longer matches (a fresh staging follows); otherwise left alone.
   */
  private async legacy(
    dest: string,
    req: StageRequest,
    tree: SourceTree,
    log: (line: string, level?: "info" | "warn") => void,
    destBusy: boolean,
  ): Promise<void> {
    const { deps, uses } = this.ctx;
    const legacy = path.join(req.storage, path.basename(req.match.rel));
    if (!(await isLegacyCopy(req.storage, legacy, deps.walk))) return;
    const verdict = await verifyLegacy(legacy, tree, deps.walk);
    if (verdict === undefined) return;
    if (verdict.kind === "differs" && verdict.common === 0) return;
    // Never moved or removed under a job that runs it as a path in storage.
    const claimed = legacy === dest ? !(destBusy && verdict.kind === "differs") : uses.claimRemoval(legacy);
    if (!claimed) return;
    try {
      if (verdict.kind === "differs") {
        log(`Removing ${legacy}, a copy the original agent left of ${req.match.rel}: it does not match the share (${verdict.why}); staging it afresh`);
        await renameThenDelete(legacy);
        return;
      }
      if (legacy !== dest) {
        if (existsSync(dest)) return; // something is there already; the legacy copy stays listed and evictable
        await mkdir(path.dirname(dest), { recursive: true });
        await rename(legacy, dest);
        await fsyncDir(path.dirname(dest));
      }
      const copyId = newCopyId();
      const bootId = await deps.bootId();
      await sealAdopted(dest, {
        copy_id: copyId,
        ...(bootId !== undefined ? { boot_id: bootId } : {}),
        kind: "kitt-model-manifest",
        version: 1,
        type: "dir",
        source: req.match.rel,
        share: req.settings.modelShareMount,
        total_bytes: tree.totalBytes,
        completed_at: new Date(deps.now()).toISOString(),
        files: tree.files.map((f) => ({ path: f.rel, size: f.size, mtime_ms: f.mtimeMs })),
      });
      this.ctx.durable(dest, req.storage, copyId);
      const moved = legacy === dest ? "" : ` (moved to ${dest})`;
      log(`Adopted ${legacy}${moved}, a copy the original agent left: it matches the share's ${req.match.rel} file for file (${tree.files.length} file(s), ${gb(tree.totalBytes)}); nothing copied`);
    } finally {
      if (legacy !== dest) uses.endRemoval(legacy);
    }
  }

  private async copy(
    job: Job,
    req: StageRequest,
    tree: SourceTree,
    model: string,
    log: (line: string, level?: "info" | "warn") => void,
    holds: Array<() => void>,
    dest: { owned: boolean; reuse: boolean },
  ): Promise<void> {
    const { deps, uses } = this.ctx;
    const plan = await planCopy(tree, job.dest, dest.reuse);
    if (!dest.owned) {
      const problem = await foreignDestProblem(job.dest, tree, plan);
      if (problem !== undefined) throw new StorageError("STAGING_FAILED", problem);
    }
    const reused = plan.reuse.length > 0 ? `, ${plan.reuse.length} unchanged file(s) kept` : "";
    log(`Staging ${model} from ${req.match.source}: ${plan.copy.length} file(s), ${gb(plan.bytesToCopy)} to copy${reused}`);
    await this.ctx.settle();
    await ensureSpace({
      model,
      dir: req.storage,
      dest: job.dest,
      needed: plan.bytesToCopy,
      margin: deps.spaceMarginBytes,
      storageDir: req.storage,
      autoCleanup: req.settings.autoCleanup,
      freeSpace: deps.freeSpace,
      evict: (dir) => this.ctx.evict(req.storage, dir),
      log: (line) => log(line),
      walk: deps.walk,
    });
    const started = deps.now();
    const copyId = newCopyId();
    const bootId = await deps.bootId();
    await executeCopy({
      model,
      tree,
      plan,
      dest: job.dest,
      manifest: {
        kind: "kitt-model-manifest",
        version: 1,
        type: tree.type,
        source: req.match.rel,
        share: req.settings.modelShareMount,
        copy_id: copyId,
        ...(bootId !== undefined ? { boot_id: bootId } : {}),
      },
      concurrency: deps.copyConcurrency,
      copyFile: deps.copyFile,
      now: deps.now,
      signal: job.controller.signal,
      onProgress: (p) => {
        for (const w of job.waiters) w.onProgress?.(p);
      },
      log: (line) => log(line),
      progressIntervalMs: deps.progressIntervalMs,
      logIntervalMs: deps.logIntervalMs,
      onStagingDir: (dir) => holds.push(uses.hold(dir)),
    });
    // Every byte is written and checked: the job may start; the disk catches up meanwhile.
    this.ctx.durable(job.dest, req.storage, copyId);
    const seconds = Math.max(0.001, (deps.now() - started) / 1000);
    log(`Staged ${model}: ${gb(plan.bytesToCopy)} in ${formatDuration(seconds)} (${formatRate(plan.bytesToCopy / seconds)})`);
  }
}
