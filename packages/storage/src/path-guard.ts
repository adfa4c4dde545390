import path from "node:path";
import { realpath } from "node:fs/promises";
import { ModelPathError } from "./errors.js";
import type { StorageSettings } from "./settings.js";

/** True when `child` is strictly inside `parent` (both absolute, normalised). */
export function isStrictlyInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
}

/** True when `child` is `parent` or inside it. */
export function isSameOrInside(parent: string, child: string): boolean {
  return parent === child || isStrictlyInside(parent, child);
}

/** realpath, or undefined when the path does not exist (or cannot be resolved). */
export async function realpathOrUndefined(p: string): Promise<string | undefined> {
  try {
    return await realpath(p);
  } catch {
    return undefined;
  }
}

/** The non-empty segments of a model path, in order. */
export function pathParts(modelPath: string): string[] {
  return modelPath.split("/").filter((part) => part !== "" && part !== ".");
}

/** The export path of `host:/export/path`, or undefined. */
function exportPath(source: string): string | undefined {
  const colon = source.indexOf(":");
  const p = colon < 0 ? "" : source.slice(colon + 1);
  return p.startsWith("/") ? path.resolve(p) : undefined;
}

function refuse(modelPath: string, why: string): never {
  throw new ModelPathError(`refusing model path "${modelPath}": ${why}`);
}

/**
 * Refuse, before anything is looked up, model paths that can never name a
 * model: the original agent resolved "." to the storage directory and then
 * auto-cleanup deleted the whole storage. Checks the literal path and, when it
 * exists, its real path.
 */
export async function checkModelPath(modelPath: unknown, settings: StorageSettings, cwd: string): Promise<string> {
  if (typeof modelPath !== "string") refuse(String(modelPath), "not a string");
  const trimmed = modelPath.trim();
  if (trimmed === "") refuse(modelPath, "it is empty");
  if ([...modelPath].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) refuse(modelPath, "it contains control characters");
  if (trimmed !== modelPath) refuse(modelPath, "it has leading or trailing spaces");
  const segments = modelPath.split("/");
  if (segments.includes("..")) refuse(modelPath, `".." is not allowed in a model path`);
  if (pathParts(modelPath).length === 0) {
    refuse(modelPath, modelPath.startsWith("/") ? "it is the root directory" : "it names the current directory, not a model");
  }

  const storage = settings.modelStorageDir;
  const mount = settings.modelShareMount;
  const absolute = path.resolve(cwd, modelPath);
  const check = (candidate: string, storageDir: string, mountDir: string | undefined): void => {
    if (candidate === storageDir) refuse(modelPath, "it is the model storage directory itself");
    if (isStrictlyInside(candidate, storageDir)) refuse(modelPath, `it contains the model storage directory ${storageDir}`);
    if (mountDir !== undefined && candidate === mountDir) refuse(modelPath, "it is the model share root");
  };
  check(absolute, storage, mount === "" ? undefined : mount);
  const exported = exportPath(settings.modelShareSource);
  if (exported !== undefined && absolute === exported) refuse(modelPath, "it is the model share root");

  const real = await realpathOrUndefined(absolute);
  if (real !== undefined) {
    const realStorage = (await realpathOrUndefined(storage)) ?? storage;
    const realMount = mount === "" ? undefined : ((await realpathOrUndefined(mount)) ?? mount);
    check(real, realStorage, realMount);
  }
  return modelPath;
}
