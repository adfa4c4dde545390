import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, mkdir, open, rename, rm, statfs, type FileHandle } from "node:fs/promises";
import { join } from "node:path";

import { KittError, UsageError } from "@kitt/protocol";

/**
 * Files in the agent's state dir. Their names are predictable, so someone
 * who can plant a symbolic link there must not get us to write through it
 * (onto another file) or read through it (and send that file to the
 * server): writes go to a fresh random name opened with O_EXCL|O_NOFOLLOW
 * and are renamed into place (a rename replaces a link, never follows it),
 * reads open with O_NOFOLLOW|O_NONBLOCK and take regular files only (a
 * FIFO would otherwise block the open).
 */

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;

/** Temp file (never an existing one), fsync (unless `sync` is false), rename: after a crash the file is either whole or absent. A failed write leaves nothing behind. */
export async function writeAtomic(dir: string, name: string, text: string, sync = true): Promise<void> {
  const tmp = join(dir, `.tmp-${name}-${randomBytes(4).toString("hex")}`);
  const handle = await open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    try {
      await handle.writeFile(text);
      if (sync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, join(dir, name));
  } catch (err) {
    // A disk that is full now must not also keep the half-written temp file.
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}

/** Opens `path` for writing without following a link at it; creates it (0600) when missing. Throws NOT_REGULAR for anything but a regular file. */
export async function openRegularForWrite(path: string): Promise<FileHandle> {
  const handle = await open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0o600).catch((err: unknown) => {
    throw notFollowed(path, err);
  });
  return ensureRegular(path, handle);
}

/** Reads a regular file (never through a link, never a FIFO or device), at most `maxBytes`. */
export async function readRegularFile(path: string, maxBytes: number): Promise<string> {
  const handle = await open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK).catch((err: unknown) => {
    throw notFollowed(path, err);
  });
  try {
    await ensureRegular(path, handle);
    const { size } = await handle.stat();
    if (size > maxBytes) throw new KittError(`${path} is too large (${size} bytes, at most ${maxBytes})`, { code: "TOO_LARGE" });
    return await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
}

/** Creates `path` (0700) if missing; refuses a link or anything else that is not a real directory. */
export async function ensureRealDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  const st = await lstat(path);
  if (st.isSymbolicLink()) throw new UsageError(`${path} is a symbolic link: the agent keeps its state in real directories only (remove the link)`, { code: "NOT_REGULAR" });
  if (!st.isDirectory()) throw new UsageError(`${path} is not a directory (remove it)`, { code: "NOT_REGULAR" });
}

/** True for the error of a state file that is a link, FIFO, device or directory. */
export function isNotRegular(err: unknown): boolean {
  return err instanceof KittError && err.code === "NOT_REGULAR";
}

async function ensureRegular(path: string, handle: FileHandle): Promise<FileHandle> {
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    throw new KittError(`${path} is not a regular file`, { code: "NOT_REGULAR" });
  }
  return handle;
}

function notFollowed(path: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ELOOP") return new KittError(`${path} is a symbolic link: not followed`, { code: "NOT_REGULAR", cause: err });
  if (code === "ENXIO") return new KittError(`${path} is not a regular file`, { code: "NOT_REGULAR", cause: err });
  return err;
}

/** Kept free on the state dir's disk: the outbox, job journal and log spool need it (the default model dir shares that disk). */
export const MIN_STATE_FREE_BYTES = 64 * 1024 * 1024;

/** Bytes available to the agent (not root's reserve) on the filesystem holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const st = await statfs(dir);
  return Number(st.bavail) * Number(st.bsize);
}

/**
 * Whether the state dir's disk has room for the agent's own records. Returns
 * a one-line reason when under `minFreeBytes`, undefined when there is room
 * or when the free space cannot be read (a check that cannot run does not
 * stop the agent). Call it at start (warn) and before each job (fail it).
 */
export async function stateDiskProblem(dir: string, minFreeBytes: number = MIN_STATE_FREE_BYTES): Promise<string | undefined> {
  let free: number;
  try {
    free = await freeBytes(dir);
  } catch {
    return undefined;
  }
  if (free >= minFreeBytes) return undefined;
  return `the disk of the agent's state dir ${dir} is full: ${mib(free)} free, the agent needs at least ${mib(minFreeBytes)} for its job records and reports`;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
