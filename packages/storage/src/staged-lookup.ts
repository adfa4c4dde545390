import path from "node:path";
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

/**
 * The first existing `<storage>/<suffix of modelPath>`, longest suffix first
 * (the same rule that maps the path onto the share), if it is complete.
 */
export async function findStagedIn(storage: string, modelPath: string): Promise<Found | undefined> {
  const parts = pathParts(modelPath);
  for (let i = 0; i < parts.length; i++) {
    const rest = parts.slice(i);
    if (rest.some(isLeftoverName)) continue;
    const dir = path.join(storage, ...rest);
    const real = await realpathOrUndefined(dir);
    if (real === undefined) continue;
    if (!isStrictlyInside(storage, real)) return undefined;
    const own = await readManifest(real);
    // Without its own manifest it may still lie inside a staged model (a
    // sub-directory, or a model staged as part of a bigger directory).
    const located = own !== undefined ? { dir: real, manifest: own } : await enclosingModel(storage, real);
    if (located === undefined || !(await manifestMatchesDisk(located.dir, located.manifest))) return undefined;
    const entry = located.dir === real ? modelEntryPath(real, located.manifest) : real;
    return { ...located, entry };
  }
  return undefined;
}
