import path from "node:path";
import { readdir, realpath, stat } from "node:fs/promises";
import { StorageError } from "./errors.js";
import { isStrictlyInside, pathParts } from "./path-guard.js";

export interface ShareMatch {
  /** The model on the share as reached through the mount (may go through in-share symlinks). */
  source: string;
  /** Its real path, inside the share's real root. */
  real: string;
  /** Relative to the share root, `/`-separated: also where it is staged under the storage dir. */
  rel: string;
  isFile: boolean;
}

export interface SearchLimits {
  /** Directory levels below the share root the name search looks into. */
  maxDepth: number;
  /** Directories it reads at most. */
  maxDirs: number;
  /** Wall time it may take, measured with `now`. */
  timeLimitMs: number;
  now: () => number;
}

export const DEFAULT_SEARCH_LIMITS: Omit<SearchLimits, "now"> = { maxDepth: 4, maxDirs: 20_000, timeLimitMs: 10_000 };

export interface LookupResult {
  match: ShareMatch | undefined;
  /** What was tried, for the error message when nothing matched. */
  tried: string;
}

async function kindOf(p: string): Promise<"dir" | "file" | undefined> {
  try {
    const st = await stat(p);
    return st.isDirectory() ? "dir" : st.isFile() ? "file" : undefined;
  } catch {
    return undefined;
  }
}

/** Accept `candidate` only if its real path stays strictly inside the share's real root. */
async function confine(modelPath: string, rootReal: string, candidate: string, rel: string): Promise<ShareMatch | undefined> {
  const kind = await kindOf(candidate);
  if (kind === undefined) return undefined;
  const real = await realpath(candidate);
  if (!isStrictlyInside(rootReal, real)) {
    throw new StorageError(
      "MODEL_OUTSIDE_SHARE",
      `refusing model "${modelPath}": ${candidate} resolves to ${real}, outside the share ${rootReal}`,
    );
  }
  return { source: candidate, real, rel, isFile: kind === "file" };
}

async function searchByName(name: string, root: string, limits: SearchLimits): Promise<{ found: string[]; note: string }> {
  const started = limits.now();
  let level = [root];
  let dirsRead = 0;
  for (let depth = 0; depth <= limits.maxDepth && level.length > 0; depth++) {
    const found: string[] = [];
    const next: string[] = [];
    for (const dir of level) {
      if (dirsRead >= limits.maxDirs) return { found, note: `stopped after ${limits.maxDirs} directories` };
      if (limits.now() - started > limits.timeLimitMs) {
        return { found, note: `stopped after ${Math.round(limits.timeLimitMs / 1000)} s` };
      }
      dirsRead++;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) {
        const child = path.join(dir, e.name);
        if (e.name === name) found.push(child);
        // Symlinked directories are not descended into: they can loop or leave the share.
        else if (e.isDirectory() && !e.name.startsWith(".")) next.push(child);
      }
    }
    if (found.length > 0) return { found, note: "" };
    level = next;
  }
  return { found: [], note: "" };
}

/**
 * Find `modelPath` on the share mounted at `mount`: strip leading parts until
 * the rest exists under the mount (`/data/models/hf/Qwen/Qwen3-8B` ->
 * `<mount>/hf/Qwen/Qwen3-8B`), else search by its last name with bounded
 * depth, directory count and time. Throws when the only match escapes the
 * share or the name search finds several.
 */
export async function findOnShare(modelPath: string, mount: string, limits: SearchLimits): Promise<LookupResult> {
  const rootReal = await realpath(mount);
  const parts = pathParts(modelPath);
  for (let i = 0; i < parts.length; i++) {
    const rel = parts.slice(i).join("/");
    const match = await confine(modelPath, rootReal, path.join(mount, rel), rel);
    if (match !== undefined) return { match, tried: "" };
  }
  const name = parts[parts.length - 1] ?? "";
  const { found, note } = await searchByName(name, mount, limits);
  const searched = `searched ${mount} for "${name}" to depth ${limits.maxDepth}${note === "" ? "" : ` (${note})`}`;
  if (found.length > 1) {
    throw new StorageError(
      "MODEL_AMBIGUOUS",
      `model "${modelPath}" is ambiguous on the share: ${found.join(", ")}; give a fuller path`,
    );
  }
  const only = found[0];
  if (only !== undefined) {
    const rel = path.relative(mount, only).split(path.sep).join("/");
    const match = await confine(modelPath, rootReal, only, rel);
    if (match !== undefined) return { match, tried: "" };
  }
  const suffixes = path.join(mount, parts.join("/")) + (parts.length > 1 ? " and its shorter suffixes" : "");
  return { match: undefined, tried: `not on the share (tried ${suffixes}; ${searched})` };
}
