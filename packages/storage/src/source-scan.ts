import path from "node:path";
import { readdir, realpath, stat } from "node:fs/promises";
import { StorageError } from "./errors.js";
import { sameMtime, type Manifest } from "./manifest.js";
import { RESERVED_NAMES } from "./ownership.js";
import { isSameOrInside } from "./path-guard.js";
import type { ShareMatch } from "./share-lookup.js";

export interface SourceFile {
  /** Relative to the model root, `/`-separated. */
  rel: string;
  /** Absolute path to read from. */
  abs: string;
  size: number;
  mtimeMs: number;
}

export interface SourceTree {
  type: "dir" | "file";
  files: SourceFile[];
  /** Sub-directories relative to the model root, parents before children. */
  dirs: string[];
  totalBytes: number;
}

/** A model with more files than this is certainly a wrong path (a whole share, a dataset). */
export const MAX_MODEL_FILES = 200_000;

/**
 * List what to copy. Symlinks inside the model are followed (Hugging Face
 * caches use them) only when their target stays inside the share; a link out
 * of the share refuses the whole model rather than copying a stranger's file.
 */
export async function scanSource(
  modelPath: string,
  match: ShareMatch,
  shareRootReal: string,
  warn: (message: string) => void,
): Promise<SourceTree> {
  if (match.isFile) {
    const st = await stat(match.source);
    const rel = path.basename(match.source);
    return { type: "file", files: [{ rel, abs: match.source, size: st.size, mtimeMs: st.mtimeMs }], dirs: [], totalBytes: st.size };
  }
  const tree: SourceTree = { type: "dir", files: [], dirs: [], totalBytes: 0 };
  const visited = new Set<string>([match.real]);

  const walk = async (dir: string, relDir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const abs = path.join(dir, e.name);
      const rel = relDir === "" ? e.name : `${relDir}/${e.name}`;
      if (RESERVED_NAMES.has(rel)) {
        warn(`skipping ${abs}: the name is reserved for the agent's own markers`);
        continue;
      }
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        let real: string;
        try {
          real = await realpath(abs);
        } catch {
          warn(`skipping broken symlink ${abs}`);
          continue;
        }
        if (!isSameOrInside(shareRootReal, real)) {
          throw new StorageError(
            "MODEL_OUTSIDE_SHARE",
            `refusing model "${modelPath}": ${abs} links to ${real}, outside the share ${shareRootReal}`,
          );
        }
        const st = await stat(real);
        isDir = st.isDirectory();
        isFile = st.isFile();
        if (isDir) {
          if (visited.has(real)) {
            warn(`skipping ${abs}: symlink loop`);
            continue;
          }
          visited.add(real);
        }
      }
      if (isDir) {
        tree.dirs.push(rel);
        await walk(abs, rel);
      } else if (isFile) {
        const st = await stat(abs);
        tree.files.push({ rel, abs, size: st.size, mtimeMs: st.mtimeMs });
        tree.totalBytes += st.size;
        if (tree.files.length > MAX_MODEL_FILES) {
          throw new StorageError("STAGING_FAILED", `refusing model "${modelPath}": more than ${MAX_MODEL_FILES} files under ${match.source}`);
        }
      } else {
        warn(`skipping ${abs}: not a regular file or directory`);
      }
    }
  };
  await walk(match.source, "");
  return tree;
}

/** How many files differ (size, mtime, present or not) between a manifest and the share's tree; Infinity when the type differs. */
export function treeDifferences(m: Manifest, tree: SourceTree): number {
  if (m.type !== tree.type) return Infinity;
  const byPath = new Map(m.files.map((f) => [f.path, f]));
  let differ = 0;
  for (const f of tree.files) {
    const mf = byPath.get(f.rel);
    if (mf === undefined || mf.size !== f.size || !sameMtime(mf.mtime_ms, f.mtimeMs)) differ++;
    byPath.delete(f.rel);
  }
  return differ + byPath.size;
}
