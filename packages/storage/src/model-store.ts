import path from "node:path";
import { existsSync } from "node:fs";
import { mkdir, realpath, utimes } from "node:fs/promises";
import { ModelPathError, StorageError, reason } from "./errors.js";
import { MANIFEST_NAME, manifestMatchesDisk } from "./manifest.js";
import { checkModelPath, isSameOrInside, isStrictlyInside, realpathOrUndefined } from "./path-guard.js";
import { normalizeStorageSettings, type StorageSettings, type StorageSettingsInput } from "./settings.js";
import { findOnShare } from "./share-lookup.js";
import { ensureShareMounted, shareAvailable, type MountDeps } from "./share-mount.js";
import { driftFromShare } from "./share-check.js";
import { adoptServerStorageDir, isOwnedLeftover, markOwned, markStorage, removeOwned } from "./ownership.js";
import { StagingJobs, guardCallbacks, unverifiedLine, type ResolveOptions, type ResolvedHow, type ResolvedModel } from "./staging-jobs.js";
import { cleanupAllIn, cleanupIn, usageOf, type CleanupAllResult, type CleanupResult, type StorageUsage } from "./store-admin.js";
import { enclosingModel, findStagedIn } from "./staged-lookup.js";
import { isLegacyCopy, legacyContaining } from "./legacy.js";
import { isLeftoverName, leftoverContaining, scanStorage } from "./storage-layout.js";
import { resolveDeps, type ModelStoreOptions, type StoreDeps } from "./store-options.js";
import { UseRegistry } from "./uses.js";
import { DurabilityQueue, trustOf, type Trust } from "./durability.js";
import type { Manifest } from "./manifest.js";

const noRelease = (): void => {};

/**
 * Local model storage: resolves a job's model path to something local to run
 * against, staging it from the NFS share when needed; tracks which staged
 * models running jobs use; cleans up and reports usage.
 */
export class ModelStore {
  private current: StorageSettings;
  private readonly deps: StoreDeps;
  private readonly uses = new UseRegistry();
  private readonly prepared = new Map<string, Promise<string>>();
  private readonly jobs: StagingJobs;
  /** Last-use stamps in flight; eviction and usage wait for them so LRU order is exact. */
  private readonly touches = new Set<Promise<void>>();
  /** agent.yaml's storage dir: the operator chose it, so it is used even when it holds other files. */
  private readonly trustedDir: string;
  private serverQueue: Promise<unknown> = Promise.resolve();
  private lastServerProblem: string | undefined;
  private readonly durability: DurabilityQueue;

  private constructor(settings: StorageSettingsInput, options: ModelStoreOptions) {
    this.deps = resolveDeps(options);
    this.current = normalizeStorageSettings(settings, undefined, this.deps.homeDir);
    this.trustedDir = this.current.modelStorageDir;
    this.durability = new DurabilityQueue({ makeDurable: this.deps.makeDurable, logger: this.deps.logger, now: this.deps.now });
    this.jobs = new StagingJobs({
      deps: this.deps,
      uses: this.uses,
      lease: (dir, entry, how) => this.lease(dir, entry, how),
      settle: () => this.settle(),
      evict: async (storage, dir) => (await cleanupIn(this.uses, storage, dir, "evict", this.deps.logger)) !== undefined,
      durable: (dir, storage, copyId) => this.durability.schedule(dir, storage, copyId),
    });
  }

  /** Create the store and remove staging leftovers of an earlier, interrupted run. */
  static async open(settings: StorageSettingsInput = {}, options: ModelStoreOptions = {}): Promise<ModelStore> {
    const store = new ModelStore(settings, options);
    await store.prepare(store.current.modelStorageDir);
    return store;
  }

  get settings(): StorageSettings {
    return this.current;
  }

  /**
   * Apply new settings (e.g. from the server); unset fields keep their value.
   * Resolves already running keep the settings they started with.
   */
  updateSettings(patch: StorageSettingsInput): StorageSettings {
    this.current = normalizeStorageSettings(patch, this.current, this.deps.homeDir);
    return this.current;
  }

  /**
   * Apply settings from the KITT server (heartbeat), which agent.yaml trusts
   * less: a new storage dir is taken only when it does not exist yet, is
   * empty, carries the agent's `.kitt-storage` marker or is agent.yaml's;
   * otherwise one warning says why and the previous dir stays. Invalid
   * settings are ignored with one warning. Never rejects; applied in order.
   */
  applyServerSettings(patch: StorageSettingsInput): Promise<StorageSettings> {
    const run = this.serverQueue.then(() => this.fromServer(patch));
    this.serverQueue = run;
    return run;
  }

  private async fromServer(patch: StorageSettingsInput): Promise<StorageSettings> {
    const warnOnce = (problem: string): StorageSettings => {
      if (problem !== this.lastServerProblem) this.deps.logger.warn(problem);
      this.lastServerProblem = problem;
      return this.current;
    };
    const { modelStorageDir: _dir, ...rest } = patch;
    let next: StorageSettings;
    try {
      next = normalizeStorageSettings(patch, this.current, this.deps.homeDir);
      const dir = next.modelStorageDir;
      if (dir !== this.current.modelStorageDir && dir !== this.trustedDir) {
        const refused = await adoptServerStorageDir(dir);
        if (refused !== undefined) {
          warnOnce(`not using ${dir} from the server as model storage: ${refused}; keeping ${this.current.modelStorageDir}`);
          this.current = normalizeStorageSettings(rest, this.current, this.deps.homeDir);
          return this.current;
        }
      }
    } catch (err) {
      return warnOnce(`ignoring the server's storage settings: ${reason(err)}`);
    }
    if (next.modelStorageDir !== this.current.modelStorageDir) this.deps.logger.info(`model storage is now ${next.modelStorageDir}`);
    this.lastServerProblem = undefined;
    this.current = next;
    return next;
  }

  /** The storage dir exists and is marked, its real path, owned leftovers from a crash removed (once per dir). */
  private prepare(dir: string): Promise<string> {
    let p = this.prepared.get(dir);
    if (p === undefined) {
      p = (async () => {
        await mkdir(dir, { recursive: true });
        const real = await realpath(dir);
        await markStorage(real).catch((err: unknown) => this.deps.logger.warn(`cannot mark ${real} as model storage: ${reason(err)}`));
        const { models, leftovers, foreign, cutShort } = await scanStorage(real, this.deps.walk);
        for (const l of leftovers) {
          if (this.uses.isBusy(l)) continue;
          this.deps.logger.info(`removing leftover staging directory ${l}`);
          await markOwned(l);
          await removeOwned(l);
        }
        for (const l of foreign) this.deps.logger.warn(`leaving ${l} alone: it is named like a staging leftover but the agent did not make it`);
        // Copies an earlier run left without their durable marker: finished now, or (from an earlier boot) never used.
        for (const m of models) {
          const trust = await this.trust(m.dir, m.manifest, real);
          if (trust === "unverified") this.deps.logger.warn(unverifiedLine(m.dir));
        }
        if (cutShort !== undefined) this.deps.logger.warn(`looking for staging leftovers in ${real} stopped ${cutShort}`);
        return real;
      })();
      this.prepared.set(dir, p);
      p.catch(() => this.prepared.delete(dir));
    }
    return p;
  }

  /** How far the copy at `dir` may be trusted; a copy of this boot not yet durable is made durable in the background. */
  private async trust(dir: string, manifest: Manifest, storage: string): Promise<Trust> {
    let trust = await trustOf(dir, manifest, await this.deps.bootId());
    if (trust === "unverified" && this.durability.knows(manifest.copy_id)) trust = "this-boot";
    if (trust === "this-boot" && manifest.copy_id !== undefined) this.durability.schedule(dir, storage, manifest.copy_id);
    return trust;
  }

  /**
   * Wait until every staged copy is durable (marker written) or its
   * durability pass failed (logged). Not needed for safety: a copy without
   * its marker is made durable by the next store in this boot, or copied
   * afresh after a reboot.
   */
  flush(): Promise<void> {
    return this.durability.flush();
  }

  /**
   * For shutdown: start no more durability passes, wait up to `waitMs` (5 s)
   * for those in progress, then abandon them after the path being fsynced.
   * Resolves true when every copy became durable. Other calls keep working.
   */
  close(options: { waitMs?: number } = {}): Promise<boolean> {
    return this.durability.close(options.waitMs ?? 5000);
  }

  private touch(dir: string): void {
    const t = new Date(this.deps.now());
    const p = utimes(path.join(dir, MANIFEST_NAME), t, t).catch(() => {});
    this.touches.add(p);
    void p.finally(() => this.touches.delete(p));
  }

  private async settle(): Promise<void> {
    await Promise.all([...this.touches]);
  }

  private lease(dir: string, entry: string, how: ResolvedHow): ResolvedModel | undefined {
    if (this.uses.isBeingRemoved(dir)) return undefined;
    const release = this.uses.hold(dir);
    // A removal renames first: if the manifest is gone, the model is too.
    if (how !== "storage" && !existsSync(path.join(dir, MANIFEST_NAME))) {
      release();
      return undefined;
    }
    this.touch(dir);
    let released = false;
    return {
      path: entry,
      how,
      modelDir: dir,
      release: () => {
        if (released) return;
        released = true;
        release();
        this.touch(dir);
      },
    };
  }

  /** Explicit use of a staged model (e.g. by a run that did not come through resolve). */
  async acquire(localPath: string): Promise<ResolvedModel> {
    const storage = await this.prepare(this.current.modelStorageDir);
    const real = await realpathOrUndefined(localPath);
    const located = real === undefined ? undefined : await enclosingModel(storage, real);
    if (located !== undefined && (await this.trust(located.dir, located.manifest, storage)) === "unverified") {
      throw new StorageError("MODEL_NOT_FOUND", unverifiedLine(located.dir));
    }
    const leased = located === undefined ? undefined : this.lease(located.dir, real ?? localPath, "staged");
    if (leased === undefined) throw new StorageError("MODEL_NOT_FOUND", `${localPath} is not a staged model in ${storage}`);
    return leased;
  }

  /**
   * Local path of the complete staged copy of `modelPath`, else of the
   * original agent's legacy copy `<storage>/<basename>`, if there is one (for
   * cleanup_storage).
   */
  async findStaged(modelPath: string): Promise<string | undefined> {
    await checkModelPath(modelPath, this.current, this.deps.cwd);
    const storage = await this.prepare(this.current.modelStorageDir);
    const staged = (await findStagedIn(storage, modelPath, this.current.modelShareMount))?.entry;
    if (staged !== undefined) return staged;
    const legacy = path.join(storage, path.basename(modelPath));
    return (await isLegacyCopy(storage, legacy, this.deps.walk)) ? legacy : undefined;
  }

  private mountDeps(onLog: ((line: string) => void) | undefined): MountDeps {
    return {
      runCommand: this.deps.runCommand,
      env: this.deps.env,
      mountInfoPath: this.deps.mountInfoPath,
      mkdir: this.deps.mkdir,
      uid: this.deps.uid,
      timeouts: this.deps.mountTimeouts,
      log: (level, message) => {
        this.deps.logger[level](message);
        onLog?.(message);
      },
    };
  }

  /**
   * Resolve a job's model path to what the benchmark should run against. In
   * order: a complete staged copy; a path already in storage; the share
   * (mounted if needed), copied to storage; the path as given if it exists; a
   * registry name (no `/`) unchanged. Otherwise throws MODEL_NOT_FOUND naming
   * what was tried. Call `release()` on the result when the job ends.
   */
  async resolve(modelPath: string, options: ResolveOptions = {}): Promise<ResolvedModel> {
    const settings = this.current;
    const opts = guardCallbacks(options, this.deps.logger);
    const cancelled = (): StorageError => new StorageError("STAGING_CANCELLED", `resolving ${modelPath} was cancelled`);
    const checkCancel = (): void => {
      if (opts.signal?.aborted === true) throw cancelled();
    };
    checkCancel();
    await checkModelPath(modelPath, settings, this.deps.cwd);
    const storage = await this.prepare(settings.modelStorageDir);

    const absolute = path.resolve(this.deps.cwd, modelPath);
    const realAbsolute = await realpathOrUndefined(absolute);
    const inStorage = realAbsolute !== undefined && isStrictlyInside(storage, realAbsolute) ? realAbsolute : undefined;
    // A path in storage stands for the share entry at its place in storage.
    const shareQuery = inStorage === undefined ? modelPath : path.relative(storage, inStorage).split(path.sep).join("/");
    if (inStorage !== undefined && shareQuery.split("/").some(isLeftoverName)) {
      throw new ModelPathError(`refusing model path "${modelPath}": it is an unfinished staging directory`);
    }

    // 1: a complete staged copy of this very model, unless the share (when reachable) has changed it.
    let staged = await findStagedIn(storage, shareQuery, settings.modelShareMount);
    // A copy that may have lost data in a crash: never used; staging below copies it afresh.
    let unverified: string | undefined;
    if (staged !== undefined && (await this.trust(staged.dir, staged.manifest, storage)) === "unverified") {
      unverified = staged.dir;
      staged = undefined;
    }
    if (staged !== undefined && opts.refresh !== true) {
      const drift = await driftFromShare(staged, {
        mount: settings.modelShareMount,
        available: async () => (await shareAvailable(settings.modelShareMount, this.mountDeps(undefined))) !== undefined,
        timeoutMs: this.deps.shareCheckMs,
      });
      if (drift.kind !== "same" && drift.line !== undefined) {
        this.deps.logger[drift.kind === "changed" ? "info" : "warn"](drift.line);
        opts.onLog?.(drift.line);
      }
      const leased = drift.kind === "changed" ? undefined : this.lease(staged.dir, staged.entry, "staged");
      if (leased !== undefined) return leased;
    }

    // 2: a path already in storage is used as is, before the share is asked:
    // a name search there could otherwise return another model of the same name.
    const enclosing = inStorage !== undefined && staged === undefined ? await enclosingModel(storage, inStorage) : undefined;
    if (enclosing !== undefined && (await this.trust(enclosing.dir, enclosing.manifest, storage)) === "unverified") unverified = enclosing.dir;
    if (inStorage !== undefined && staged === undefined && unverified === undefined) {
      if (enclosing === undefined || !(await manifestMatchesDisk(enclosing.dir, enclosing.manifest))) {
        const message = `using ${inStorage} as is: it is in storage but has no ${enclosing === undefined ? "" : "matching "}completion manifest`;
        this.deps.logger.warn(message);
        opts.onLog?.(message);
      }
      const leased = this.lease(enclosing?.dir ?? inStorage, inStorage, "storage");
      if (leased !== undefined) return leased;
    }

    const tried: string[] = [];
    const mount = settings.modelShareMount;
    if (mount !== "") {
      checkCancel();
      const outcome = await ensureShareMounted(mount, settings.modelShareSource, this.mountDeps(opts.onLog));
      if (outcome.mounted) {
        const lookup = await findOnShare(shareQuery, mount, this.deps.search);
        if (lookup.match !== undefined) {
          const shareRootReal = await realpath(mount);
          const request = { modelPath, match: lookup.match, settings, storage, shareRootReal };
          if (staged !== undefined && staged.dir !== this.jobs.destFor(storage, lookup.match)) {
            // Refreshing a part of a bigger staged model would nest one model in another.
            opts.onLog?.(`not refreshing ${staged.entry}: it is part of the staged model ${staged.dir}`);
          } else {
            try {
              return await this.jobs.stage(request, opts);
            } catch (err) {
              // A refresh that cannot replace a copy in use falls back to that complete copy.
              const code = (err as { code?: unknown }).code;
              if (staged === undefined || code !== "MODEL_IN_USE") throw err;
              opts.onLog?.(reason(err));
            }
          }
        } else {
          tried.push(lookup.tried);
        }
      } else {
        const detail = outcome.failures.length > 0 ? ` (${outcome.failures.join("; ")})` : "";
        tried.push(`share ${mount} unavailable: ${outcome.how}${detail}`);
      }
    } else {
      tried.push("no model share configured");
    }

    if (staged !== undefined) {
      const leased = this.lease(staged.dir, staged.entry, "staged");
      if (leased !== undefined) return leased;
    }
    if (unverified !== undefined && inStorage !== undefined && isSameOrInside(unverified, inStorage)) {
      throw new StorageError(
        "MODEL_NOT_FOUND",
        `model "${modelPath}" is not usable: ${unverified} was staged before the machine restarted and never made durable, and it cannot be copied afresh: ${tried.join("; ")}`,
      );
    }
    if (existsSync(absolute)) return { path: modelPath, how: "as-is", modelDir: undefined, release: noRelease };
    if (!modelPath.includes("/")) return { path: modelPath, how: "registry", modelDir: undefined, release: noRelease };
    throw new StorageError(
      "MODEL_NOT_FOUND",
      `model "${modelPath}" not found: not staged in ${storage}; ${tried.join("; ")}; and no such path on this machine`,
    );
  }

  /**
   * Remove a staged model (the one `localPath` is or lies in) or a staging
   * leftover. Refused (CLEANUP_REFUSED) unless its real path is inside the
   * storage dir and in or at a directory with a completion manifest (or a
   * leftover); (MODEL_IN_USE) while a job uses it.
   */
  async cleanup(localPath: string): Promise<CleanupResult> {
    const storage = await this.prepare(this.current.modelStorageDir);
    const real = await realpathOrUndefined(localPath);
    if (real === undefined) throw new StorageError("CLEANUP_REFUSED", `cannot clean up ${localPath}: no such path`);
    if (!isStrictlyInside(storage, real)) {
      throw new StorageError("CLEANUP_REFUSED", `refusing to clean up ${localPath}: ${real} is not inside the model storage ${storage}`);
    }
    const leftover = leftoverContaining(storage, real);
    if (leftover !== undefined && !(await isOwnedLeftover(leftover))) {
      throw new StorageError("CLEANUP_REFUSED", `refusing to clean up ${localPath}: ${leftover} is named like a staging leftover but the agent did not make it`);
    }
    const target = leftover ?? (await enclosingModel(storage, real))?.dir ?? (await legacyContaining(storage, real, this.deps.walk));
    if (target === undefined) {
      // Only what staging (or the original agent) made: not a user's directory, nor a parent of staged models.
      throw new StorageError(
        "CLEANUP_REFUSED",
        `refusing to clean up ${localPath}: ${real} is not a staged model (no completion manifest in it or above it), a legacy copy nor a staging leftover`,
      );
    }
    const freed = await cleanupIn(this.uses, storage, target, "cleanup", this.deps.logger);
    if (freed === undefined) throw new StorageError("MODEL_IN_USE", `refusing to clean up ${target}: a running job uses it`);
    return { removed: target, freed_bytes: freed };
  }

  /** Remove every staged model no job uses, and staging leftovers (`cleanup_storage` with `__cleanup__`). */
  async cleanupAll(): Promise<CleanupAllResult> {
    const storage = await this.prepare(this.current.modelStorageDir);
    await this.settle();
    return cleanupAllIn(this.uses, storage, this.deps.logger, this.deps.walk);
  }

  /** Space used and free, and each staged model with its size and last use. */
  async usage(): Promise<StorageUsage> {
    const storage = await this.prepare(this.current.modelStorageDir);
    await this.settle();
    return usageOf(this.uses, storage, this.deps.freeSpace, this.deps.walk);
  }
}
