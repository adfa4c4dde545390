import { isAbsolute, join, relative } from "node:path";

import type { AgentConfig } from "@kitt/protocol";
import { KittError, UsageError } from "@kitt/protocol";
import type { CleanupAllResult, CleanupResult, ModelStore, StagingProgress, StorageUsage } from "@kitt/storage";

import { checkProcess, readPidFile } from "./pid.js";

/**
 * The daemon owns model storage while it runs (it tracks which models its
 * jobs use, in memory): a second process staging or evicting beside it could
 * remove what a job runs against. So these commands run only while it does not.
 */
export async function refuseWhileDaemonRuns(config: AgentConfig): Promise<void> {
  const pidFile = join(config.state_dir, "agent.pid");
  const pid = await readPidFile(pidFile).catch(() => undefined);
  if (pid !== undefined && checkProcess(pid).state === "ours") {
    throw new KittError(
      `the agent daemon is running (pid ${pid}) and owns ${config.model_storage_dir}: stop it first, or see its storage with kitt-agent status`,
      { code: "DAEMON_RUNNING" },
    );
  }
}

/** The store for agent.yaml's storage settings (opening it removes leftovers of an interrupted staging). */
export async function openStore(config: AgentConfig): Promise<ModelStore> {
  const { ModelStore: Store } = await import("@kitt/storage");
  return Store.open(
    {
      modelStorageDir: config.model_storage_dir,
      modelShareSource: config.model_share_source,
      modelShareMount: config.model_share_mount,
      autoCleanup: config.auto_cleanup,
    },
    { copyConcurrency: config.copy_concurrency },
  );
}

export async function listModels(store: ModelStore): Promise<StorageUsage> {
  return store.usage();
}

/** True while the agent daemon of this config runs (it then owns the storage). */
export async function daemonRuns(config: AgentConfig): Promise<boolean> {
  const pid = await readPidFile(join(config.state_dir, "agent.pid")).catch(() => undefined);
  return pid !== undefined && checkProcess(pid).state === "ours";
}

/**
 * The staged models as the running daemon sees them (its /api/status carries
 * the storage usage, in-use flags included): listing needs no second owner.
 */
export async function listModelsFromDaemon(config: AgentConfig): Promise<StorageUsage> {
  const { daemonRequest } = await import("./daemon-client.js");
  const res = await daemonRequest(config, "GET", "/api/status");
  const storage = (res.body as { storage?: Partial<StorageUsage> } | undefined)?.storage;
  if (res.status !== 200 || storage === undefined || !Array.isArray(storage.models)) {
    throw new KittError(`the daemon's /api/status gave no model list (HTTP ${res.status})`, { code: "DAEMON_REQUEST" });
  }
  return storage as StorageUsage;
}

/** Rows as aligned columns, header first. */
function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return [header, ...rows].map((row) => row.map((c, i) => (i < row.length - 1 ? c.padEnd(widths[i] ?? 0) : c)).join("  "));
}

export function formatModels(usage: StorageUsage): string {
  // A daemon of an earlier version reports no legacy list.
  const legacy = usage.legacy ?? [];
  const legacyCount = legacy.length > 0 ? `, ${legacy.length} legacy` : "";
  const lines = [`${usage.storage_dir}: ${usage.model_count} staged${legacyCount}, ${usage.used_gb} GiB used, ${usage.free_gb} GiB free`];
  if (usage.partial !== undefined) lines.push(`(partial: ${usage.partial}; the list and figures may be incomplete)`);
  if (usage.models.length > 0) {
    const rows = usage.models.map((m) => [relative(usage.storage_dir, m.path), m.size_gb.toFixed(2), m.last_used ?? "-", m.in_use ? "yes" : "no"]);
    lines.push(...table(["MODEL", "SIZE_GIB", "LAST_USED", "IN_USE"], rows));
  }
  if (legacy.length > 0) {
    lines.push("Legacy copies of the original agent (no manifest; unverified, used only once a job's model verifies against the share):");
    lines.push(...table(["LEGACY", "SIZE_GIB", "MODIFIED"], legacy.map((l) => [relative(usage.storage_dir, l.path), l.size_gb.toFixed(2), l.modified ?? "-"])));
  }
  return lines.join("\n");
}

export interface StageOutcome {
  path: string;
  how: string;
}

/**
 * Stages a model the way a job does (store.resolve) and releases it at once.
 * Aborting `signal` cancels the copy; the library leaves no partial model.
 */
export async function stageModel(
  store: ModelStore,
  modelPath: string,
  callbacks: { onLog?: (line: string) => void; onProgress?: (p: StagingProgress) => void; signal?: AbortSignal },
): Promise<StageOutcome> {
  const resolved = await store.resolve(modelPath, callbacks);
  resolved.release();
  if (resolved.how === "as-is" || resolved.how === "registry") {
    throw new KittError(
      `${modelPath} was not staged: ${resolved.how === "registry" ? "it is a registry name" : "it is a local path outside the share"}, which a job runs as is`,
      { code: "NOT_STAGED" },
    );
  }
  return { path: resolved.modelDir ?? resolved.path, how: resolved.how };
}

/** One staged model (by its listed name, relative to storage, or its absolute path), through the library's checks. */
export async function evictModel(store: ModelStore, name: string): Promise<CleanupResult> {
  if (name.trim() === "") throw new UsageError("name the model to evict (as `kitt-agent models list` shows it) or use --all");
  const path = isAbsolute(name) ? name : join(store.settings.modelStorageDir, name);
  return store.cleanup(path);
}

export async function evictAll(store: ModelStore): Promise<CleanupAllResult> {
  return store.cleanupAll();
}
