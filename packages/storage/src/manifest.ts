import path from "node:path";
import { lstat, open, readFile } from "node:fs/promises";

/** Written last into a staged model directory: its presence and match prove the copy complete. */
export const MANIFEST_NAME = ".kitt-manifest.json";

/**
 * Written into a staged model once its data is on stable storage (see the
 * README, "Durability"): `{ kind, copy_id, durable_at }`. It counts only for
 * the copy whose manifest carries the same `copy_id`.
 */
export const DURABLE_MARKER = ".kitt-durable";

export interface ManifestFile {
  /** Relative to the model directory, `/`-separated. */
  path: string;
  size: number;
  /** The share file's mtime in ms; the local copy carries the same mtime. */
  mtime_ms: number;
}

export interface Manifest {
  kind: "kitt-model-manifest";
  version: 1;
  /** `dir` for a model directory; `file` for a single-file model (GGUF) kept inside a directory of its name. */
  type: "dir" | "file";
  /** Path of the model relative to the share root, e.g. `hf/Qwen/Qwen3-8B`. */
  source: string;
  /** The share mount it came from, for humans. */
  share: string;
  total_bytes: number;
  completed_at: string;
  files: ManifestFile[];
  /**
   * Names this copy for its durable marker (see durability.ts). Absent in
   * manifests of agents that fsynced every file before writing the manifest:
   * those copies are durable by construction.
   */
  copy_id?: string;
  /** The kernel boot the copy was written in (/proc/sys/kernel/random/boot_id); absent when unknown. */
  boot_id?: string;
}

function isManifestFile(v: unknown): v is ManifestFile {
  const f = v as ManifestFile;
  return (
    typeof f === "object" &&
    f !== null &&
    typeof f.path === "string" &&
    f.path !== "" &&
    !f.path.startsWith("/") &&
    !f.path.split("/").includes("..") &&
    Number.isSafeInteger(f.size) &&
    f.size >= 0 &&
    typeof f.mtime_ms === "number" &&
    Number.isFinite(f.mtime_ms)
  );
}

/** Parse and validate manifest text; undefined when it is not a valid manifest. */
export function parseManifest(text: string): Manifest | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const m = v as Manifest;
  if (typeof m !== "object" || m === null || m.kind !== "kitt-model-manifest" || m.version !== 1) return undefined;
  if (m.type !== "dir" && m.type !== "file") return undefined;
  if (typeof m.source !== "string" || typeof m.share !== "string" || typeof m.completed_at !== "string") return undefined;
  if (!Number.isSafeInteger(m.total_bytes) || !Array.isArray(m.files) || !m.files.every(isManifestFile)) return undefined;
  if (m.type === "file" && m.files.length !== 1) return undefined;
  if (m.copy_id !== undefined && (typeof m.copy_id !== "string" || m.copy_id === "")) return undefined;
  if (m.boot_id !== undefined && typeof m.boot_id !== "string") return undefined;
  return m;
}

export async function readManifest(modelDir: string): Promise<Manifest | undefined> {
  try {
    return parseManifest(await readFile(path.join(modelDir, MANIFEST_NAME), "utf8"));
  } catch {
    return undefined;
  }
}

/** Two mtimes are equal when within 1 ms: filesystems keep different sub-ms precision. */
export function sameMtime(a: number, b: number): boolean {
  return Math.abs(a - b) < 1;
}

const VERIFY_BATCH = 64;

/**
 * Whether every file the manifest lists is present as a regular file with its
 * size and mtime. Stat only: reading data would cost as much as the copy.
 */
export async function manifestMatchesDisk(modelDir: string, manifest: Manifest): Promise<boolean> {
  for (let i = 0; i < manifest.files.length; i += VERIFY_BATCH) {
    const batch = manifest.files.slice(i, i + VERIFY_BATCH);
    const results = await Promise.all(
      batch.map(async (f) => {
        try {
          const st = await lstat(path.join(modelDir, f.path));
          return st.isFile() && st.size === f.size && sameMtime(st.mtimeMs, f.mtime_ms);
        } catch {
          return false;
        }
      }),
    );
    if (results.includes(false)) return false;
  }
  return true;
}

/** The path a runner should use: the directory, or the single file inside it. */
export function modelEntryPath(modelDir: string, manifest: Manifest): string {
  const only = manifest.files[0];
  return manifest.type === "file" && only !== undefined ? path.join(modelDir, only.path) : modelDir;
}

/** Write the manifest into `dir` and fsync it. */
export async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  const handle = await open(path.join(dir, MANIFEST_NAME), "wx", 0o644);
  try {
    await handle.writeFile(JSON.stringify(manifest) + "\n");
    await handle.sync();
  } finally {
    await handle.close();
  }
}
