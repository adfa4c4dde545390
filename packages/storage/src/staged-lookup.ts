import path from "node:path";
import { stat } from "node:fs/promises";
import { manifestMatchesDisk, modelEntryPath, readManifest, type Manifest } from "./manifest.js";
import { isStrictlyInside, pathParts, realpathOrUndefined } from "./path-guard.js";
import { isLeftoverName } from "./storage-layout.js";

export interface Located {
  dir: string;
  manifest: Manifest;
}

export interface Found extends Located {
  /** What to run against: the model dir, its single file, or a path inside it. */
  entry: string;
}

/** The staged model containing `p` (walking up to the storage dir), if any. */
export async function enclosingModel(storage: string, p: string): Promise<Located | undefined> {
  for (let d = p; isStrictlyInside(storage, d); d = path.dirname(d)) {
    const manifest = await readManifest(d);
    if (manifest !== undefined) return { dir: d, manifest };
  }
  return undefined;
}

/** The share-relative path `p` stands for: the model's recorded source plus its path inside the model. */
function sourceOf(located: Located, p: string): string {
  const inner = path.relative(located.dir, p).split(path.sep).filter((part) => part !== "");
  return [...pathParts(located.manifest.source), ...inner].join("/");
}

/**
 * The complete staged copy of `modelPath`, if there is one. Several share
 * entries can end alike (`Qwen3-8B/` and `gguf/Qwen3-8B/`), so a copy is only
 * reused for the model it was staged from: when the share at `shareMount`
 * has the path, it is mapped there first (longest suffix that exists, the
 * rule step 3 uses) and only the copy whose manifest records that source
 * counts; otherwise (no share configured, not mounted, or not on it) the
 * longest suffix that exists in storage counts only when it equals the
 * recorded source in full. Only `stat`s the share: never mounts or copies.
 */
export async function findStagedIn(storage: string, modelPath: string, shareMount = ""): Promise<Found | undefined> {
  const parts = pathParts(modelPath);
  const onShare = shareMount === "" ? undefined : await shareSuffix(parts, shareMount);
  const candidates = onShare !== undefined ? [onShare] : parts.map((_, i) => parts.slice(i));
  for (const rest of candidates) {
    if (rest.some(isLeftoverName)) continue;
    const dir = path.join(storage, ...rest);
    const real = await realpathOrUndefined(dir);
    if (real === undefined) continue;
    if (!isStrictlyInside(storage, real)) return undefined;
    const own = await readManifest(real);
    // Without its own manifest it may still lie inside a staged model (a
    // sub-directory, or a model staged as part of a bigger directory).
    const located = own !== undefined ? { dir: real, manifest: own } : await enclosingModel(storage, real);
    if (located === undefined) return undefined;
    // A copy of another share entry that merely ends the same way: not this model.
    if (sourceOf(located, real) !== rest.join("/")) continue;
    if (!(await manifestMatchesDisk(located.dir, located.manifest))) return undefined;
    const entry = located.dir === real ? modelEntryPath(real, located.manifest) : real;
    return { ...located, entry };
  }
  return undefined;
}

/** The longest suffix of `parts` that exists under `mount`, if any (stat only). */
async function shareSuffix(parts: string[], mount: string): Promise<string[] | undefined> {
  for (let i = 0; i < parts.length; i++) {
    const rest = parts.slice(i);
    try {
      await stat(path.join(mount, ...rest));
      return rest;
    } catch {
      // not at this suffix
    }
  }
  return undefined;
}
