import path from "node:path";
import os from "node:os";
import { ConfigError } from "@kitt/protocol";

/** The storage settings as the agent config or the server hands them over. */
export interface StorageSettingsInput {
  /** Local directory for staged models; `~` is expanded. Default `~/.kitt/models`. */
  modelStorageDir?: string;
  /** NFS export to mount when the mount point is not mounted, e.g. `nas:/volume1/models`. */
  modelShareSource?: string;
  /** Where the share is (or gets) mounted, e.g. `/mnt/models`. Empty: no share. */
  modelShareMount?: string;
  /** Evict unused staged models when space runs short. Default true. */
  autoCleanup?: boolean;
}

/** Validated, normalised settings. A resolve keeps the snapshot it started with. */
export interface StorageSettings {
  readonly modelStorageDir: string;
  readonly modelShareSource: string;
  readonly modelShareMount: string;
  readonly autoCleanup: boolean;
}

export const DEFAULT_STORAGE_DIR = "~/.kitt/models";

function expandHome(p: string, homeDir: string): string {
  if (p === "~") return homeDir;
  if (p.startsWith("~/")) return path.join(homeDir, p.slice(2));
  return p;
}

function checkPlainPath(field: string, value: string): void {
  // A NUL or newline in a path is never intended and breaks logs and mount.
  if (/[\0\n\r]/.test(value)) throw new ConfigError(`${field} contains a control character`, { field });
}

function isSameOrInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/**
 * Merge `patch` over `base` (undefined fields keep the base value) and
 * validate the result. Throws ConfigError naming the field.
 */
export function normalizeStorageSettings(
  patch: StorageSettingsInput,
  base: StorageSettings | undefined,
  homeDir: string = os.homedir(),
): StorageSettings {
  const rawDir = patch.modelStorageDir ?? base?.modelStorageDir ?? DEFAULT_STORAGE_DIR;
  const rawSource = (patch.modelShareSource ?? base?.modelShareSource ?? "").trim();
  const rawMount = (patch.modelShareMount ?? base?.modelShareMount ?? "").trim();
  const autoCleanup = patch.autoCleanup ?? base?.autoCleanup ?? true;

  checkPlainPath("model_storage_dir", rawDir);
  checkPlainPath("model_share_mount", rawMount);
  checkPlainPath("model_share_source", rawSource);

  const dir = expandHome(rawDir.trim(), homeDir);
  if (dir === "" || !path.isAbsolute(dir)) {
    throw new ConfigError(`model_storage_dir must be an absolute path (or start with ~/), got "${rawDir}"`, {
      field: "model_storage_dir",
    });
  }
  const modelStorageDir = path.resolve(dir);
  // Cleanup deletes what is inside this directory: "/" or the home directory
  // itself would be catastrophic.
  if (modelStorageDir === "/" || modelStorageDir === path.resolve(homeDir)) {
    throw new ConfigError(`model_storage_dir must be a dedicated directory, not "${modelStorageDir}"`, {
      field: "model_storage_dir",
    });
  }

  let modelShareMount = "";
  if (rawMount !== "") {
    const mount = expandHome(rawMount, homeDir);
    if (!path.isAbsolute(mount)) {
      throw new ConfigError(`model_share_mount must be an absolute path, got "${rawMount}"`, {
        field: "model_share_mount",
      });
    }
    modelShareMount = path.resolve(mount);
    if (modelShareMount === "/") {
      throw new ConfigError(`model_share_mount must not be "/"`, { field: "model_share_mount" });
    }
    if (isSameOrInside(modelShareMount, modelStorageDir) || isSameOrInside(modelStorageDir, modelShareMount)) {
      throw new ConfigError(
        `model_share_mount (${modelShareMount}) and model_storage_dir (${modelStorageDir}) must not contain each other`,
        { field: "model_share_mount" },
      );
    }
  }

  // The source goes on a mount command line: refuse what could read as an option.
  if (rawSource !== "" && (rawSource.startsWith("-") || /\s/.test(rawSource) || !rawSource.includes(":"))) {
    throw new ConfigError(`model_share_source must look like host:/export/path, got "${rawSource}"`, {
      field: "model_share_source",
    });
  }

  return Object.freeze({ modelStorageDir, modelShareSource: rawSource, modelShareMount, autoCleanup });
}
