import path from "node:path";
import { lstat, open, readdir, rename } from "node:fs/promises";
import { DURABLE_MARKER, MANIFEST_NAME, sameMtime, type Manifest } from "./manifest.js";
import { OWNER_MARKER, STORAGE_MARKER } from "./ownership.js";
import type { SourceTree } from "./source-scan.js";
import { fsyncDir, isLeftoverName, type WalkLimits } from "./storage-layout.js";

/**
 * Flat copies the original (Python) agent left: it copied a model directory
 * from the share to `<storage>/<basename>` and wrote no manifest. Such a
 * directory is a *legacy copy*: listed and evictable, but never used as a
 * staged model until verified against the share file for file.
 */
export const LEGACY_NOTE = "legacy copy of the original agent: no manifest, unverified";

/**
 * Files only a model directory holds (weights, or a Hugging Face config): a
 * directory without one is someone's folder, not a model copy, and is never
 * listed, evicted or replaced as a legacy copy.
 */
const MODEL_FILE = /(^config\.json$|\.(safetensors|gguf|bin|pt|pth|ckpt|onnx|h5|msgpack|engine|plan|nemo)$)/;

const AGENT_NAMES: ReadonlySet<string> = new Set([MANIFEST_NAME, DURABLE_MARKER, OWNER_MARKER, STORAGE_MARKER]);

interface LegacyFile {
  size: number;
  mtimeMs: number;
}

interface LegacyTree {
  files: Map<string, LegacyFile>;
  dirs: string[];
  /** Entries that are neither regular files nor directories (symlinks, sockets). */
  others: string[];
}

/**
 * The files of `dir` (relative, `/`-separated), or undefined when it is not a
 * legacy copy: anything the agent names itself (manifest, markers, staging
 * leftovers) anywhere inside, no model file (MODEL_FILE) at all, or a walk
 * over `limits` (unknown contents are never taken for a copy).
 */
async function legacyTree(dir: string, limits: WalkLimits): Promise<LegacyTree | undefined> {
  const tree: LegacyTree = { files: new Map(), dirs: [], others: [] };
  const deadline = limits.now() + limits.maxMs;
  let seen = 0;
  const walk = async (d: string, rel: string): Promise<boolean> => {
    const entries = await readdir(d, { withFileTypes: true });
    seen += entries.length;
    if (seen > limits.maxEntries || limits.now() > deadline) return false;
    for (const e of entries) {
      if (AGENT_NAMES.has(e.name) || isLeftoverName(e.name)) return false;
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      const abs = path.join(d, e.name);
      if (e.isDirectory()) {
        tree.dirs.push(r);
        if (!(await walk(abs, r))) return false;
      } else if (e.isFile()) {
        const st = await lstat(abs);
        tree.files.set(r, { size: st.size, mtimeMs: st.mtimeMs });
      } else {
        tree.others.push(r);
      }
    }
    return true;
  };
  try {
    const st = await lstat(dir);
    if (!st.isDirectory() || path.basename(dir).startsWith(".")) return undefined;
    if (!(await walk(dir, ""))) return undefined;
  } catch {
    return undefined;
  }
  return [...tree.files.keys()].some((rel) => MODEL_FILE.test(path.basename(rel))) ? tree : undefined;
}

/** Whether `dir`, a direct child of `storage`, is a legacy copy. */
export async function isLegacyCopy(storage: string, dir: string, limits: WalkLimits): Promise<boolean> {
  return path.dirname(dir) === storage && (await legacyTree(dir, limits)) !== undefined;
}

/** The legacy copies in `storage` (its direct children only: the original copied flat). */
export async function legacyCopies(storage: string, limits: WalkLimits): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(storage, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const dir = path.join(storage, e.name);
    if (await isLegacyCopy(storage, dir, limits)) out.push(dir);
  }
  return out;
}

/** The top-level directory of `storage` that `p` is or lies in, when it is a legacy copy. */
export async function legacyContaining(storage: string, p: string, limits: WalkLimits): Promise<string | undefined> {
  const first = path.relative(storage, p).split(path.sep)[0];
  if (first === undefined || first === "" || first === "..") return undefined;
  const top = path.join(storage, first);
  return (await isLegacyCopy(storage, top, limits)) ? top : undefined;
}

export type LegacyVerdict =
  | { kind: "verified" }
  /** Not the share's model file for file; `common` files share a path with it (0: not a copy of this model). */
  | { kind: "differs"; why: string; common: number };

/**
 * Compare the legacy copy at `dir` with the share's `tree`: the same relative
 * file set, and size and mtime of every file equal (stat only). Only
 * directory models: the original copied directories.
 */
export async function verifyLegacy(dir: string, tree: SourceTree, limits: WalkLimits): Promise<LegacyVerdict | undefined> {
  if (tree.type !== "dir") return undefined;
  const local = await legacyTree(dir, limits);
  if (local === undefined) return undefined;
  const share = new Map(tree.files.map((f) => [f.rel, f]));
  const common = [...local.files.keys()].filter((rel) => share.has(rel)).length;
  const missing = tree.files.filter((f) => !local.files.has(f.rel)).map((f) => f.rel);
  const extra = [...local.files.keys()].filter((rel) => !share.has(rel));
  const changed = tree.files
    .filter((f) => {
      const l = local.files.get(f.rel);
      return l !== undefined && (l.size !== f.size || !sameMtime(l.mtimeMs, f.mtimeMs));
    })
    .map((f) => f.rel);
  const shareDirs = new Set(tree.dirs);
  const strayDirs = local.dirs.filter((d) => !shareDirs.has(d));
  const problems: string[] = [];
  const some = (what: string, names: string[]): void => {
    if (names.length > 0) problems.push(`${names.length} ${what} (${names.slice(0, 3).join(", ")}${names.length > 3 ? ", ..." : ""})`);
  };
  some("file(s) differ in size or mtime", changed);
  some("file(s) missing", missing);
  some("file(s) not on the share", extra);
  some("director(ies) not on the share", strayDirs);
  some("entries neither file nor directory", local.others);
  return problems.length === 0 ? { kind: "verified" } : { kind: "differs", why: problems.join("; "), common };
}

/**
 * Seal an adopted copy: the manifest is written under a temporary name,
 * fsynced and renamed into place, so that a crash leaves either the legacy
 * copy (with one stray file, so it no longer verifies and is restaged) or the
 * sealed model, never a half-written manifest.
 */
export async function sealAdopted(dir: string, manifest: Manifest): Promise<void> {
  const tmp = path.join(dir, `${MANIFEST_NAME}.adopting`);
  const handle = await open(tmp, "w", 0o644);
  try {
    await handle.writeFile(JSON.stringify(manifest) + "\n");
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path.join(dir, MANIFEST_NAME));
  await fsyncDir(dir);
}
