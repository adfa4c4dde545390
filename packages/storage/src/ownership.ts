import path from "node:path";
import { lstat, mkdir, open, opendir, readdir, rm, rmdir, stat } from "node:fs/promises";
import { errnoCode, reason } from "./errors.js";
import { DURABLE_MARKER, MANIFEST_NAME, readManifest } from "./manifest.js";

/**
 * What proves that the agent made something, so that it only ever deletes
 * its own: `.kitt-storage` at the root of a storage dir it created or
 * adopted, and `.kitt-owner` inside each staging or trash directory it makes
 * (written before anything else, removed last). A staged model is proven by
 * its completion manifest. Names alone prove nothing: a user's folder can be
 * called `.notes.kitt-staging-0123456789ab`.
 */
export const STORAGE_MARKER = ".kitt-storage";
export const OWNER_MARKER = ".kitt-owner";

/** Names a model on the share may not use at its root: the agent writes them. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([MANIFEST_NAME, DURABLE_MARKER, OWNER_MARKER, STORAGE_MARKER]);

async function isRegularFile(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isFile();
  } catch {
    return false;
  }
}

/** Create `dir/name` (never through a symlink, never over an existing file) and fsync it. */
async function writeMarker(dir: string, name: string, body: object): Promise<void> {
  let handle;
  try {
    handle = await open(path.join(dir, name), "wx", 0o644);
  } catch (err) {
    if (errnoCode(err) === "EEXIST") return;
    throw err;
  }
  try {
    await handle.writeFile(JSON.stringify({ ...body, created_at: new Date().toISOString() }) + "\n");
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Mark a staging or trash directory as the agent's (idempotent). */
export function markOwned(dir: string): Promise<void> {
  return writeMarker(dir, OWNER_MARKER, { kind: "kitt-owned", name: path.basename(dir) });
}

/** Whether `dir` is empty; false when it cannot be read. Reads at most one entry. */
async function isEmptyDir(dir: string): Promise<boolean> {
  try {
    const handle = await opendir(dir);
    try {
      return (await handle.read()) === null;
    } finally {
      await handle.close().catch(() => {});
    }
  } catch {
    return false;
  }
}

/**
 * A staging or trash directory the agent made: it holds the owner marker or
 * a valid manifest (a crash between rename-to-trash and marking leaves only
 * that), or is empty (nothing in it to lose).
 */
export async function isOwnedLeftover(dir: string): Promise<boolean> {
  if (await isRegularFile(path.join(dir, OWNER_MARKER))) return true;
  if ((await readManifest(dir)) !== undefined) return true;
  return isEmptyDir(dir);
}

/**
 * Delete an owned directory so that it stays provably owned until it is
 * gone: everything but the marker first, then the marker, then the dir.
 */
export async function removeOwned(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return;
    throw err;
  }
  for (const name of names) {
    if (name !== OWNER_MARKER) await rm(path.join(dir, name), { recursive: true, force: true, maxRetries: 5 });
  }
  await rm(path.join(dir, OWNER_MARKER), { force: true });
  try {
    await rmdir(dir);
  } catch (err) {
    // A kernel copy that was running when a cancel removed the dir may land late.
    if (errnoCode(err) === "ENOTEMPTY") await rm(dir, { recursive: true, force: true, maxRetries: 5 });
    else if (errnoCode(err) !== "ENOENT") throw err;
  }
}

/** Mark a storage dir as the agent's (idempotent). */
export function markStorage(dir: string): Promise<void> {
  return writeMarker(dir, STORAGE_MARKER, { kind: "kitt-storage", version: 1 });
}

/**
 * Decide whether the agent may use `dir` as its model storage when the KITT
 * server (not agent.yaml) names it: a directory that does not exist yet is
 * created, an empty one or one with the storage marker is adopted; anything
 * else (a non-empty directory without the marker, a file) is refused. Adopted
 * dirs get the marker. Returns undefined when adopted, else the reason.
 */
export async function adoptServerStorageDir(dir: string): Promise<string | undefined> {
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    if (errnoCode(err) !== "ENOENT") return `cannot inspect it: ${reason(err)}`;
  }
  try {
    if (st === undefined) {
      await mkdir(dir, { recursive: true });
    } else if (!st.isDirectory()) {
      return "it is not a directory";
    } else if (!(await isRegularFile(path.join(dir, STORAGE_MARKER))) && !(await isEmptyDir(dir))) {
      return `it is not empty and the agent did not create it (no ${STORAGE_MARKER} marker); name it in agent.yaml to use it anyway`;
    }
    await markStorage(dir);
    return undefined;
  } catch (err) {
    return reason(err);
  }
}
