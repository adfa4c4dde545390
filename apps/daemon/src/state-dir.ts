import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readSync, statSync, type Stats } from "node:fs";

import { dirname } from "node:path";

import { KittError } from "@kitt/protocol";

/**
 * The state dir (`~/.kitt`) holds the pid file, the log, the outbox and the
 * job journal under names anyone can predict. Whoever else can write there
 * can plant a symbolic link at one of them and have the agent write (or
 * read) through it, so the agent refuses a state dir another user owns or
 * others may write to, and never follows a link at the names it opens.
 */

const { O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY } = constants;

function euid(): number | undefined {
  return process.geteuid?.();
}

function mode(st: Stats): string {
  return `0${(st.mode & 0o7777).toString(8)}`;
}

function stateError(message: string): KittError {
  return new KittError(message, { code: "STATE_DIR" });
}

/** Owner and permission check of a directory the agent keeps its files in. */
function checkPrivate(dir: string, st: Stats, what: string, uid: number | undefined): void {
  if (!st.isDirectory()) throw stateError(`${what} ${dir} is not a directory`);
  if (uid !== undefined && st.uid !== uid) {
    throw stateError(`${what} ${dir} is owned by uid ${st.uid}, not by this user (uid ${uid}): run chown ${uid} ${dir}, or set state_dir to a directory of your own`);
  }
  if ((st.mode & 0o022) !== 0) {
    throw stateError(`${what} ${dir} is mode ${mode(st)}, writable by group or others: run chmod 700 ${dir}`);
  }
}

/**
 * Makes sure `dir` is a state dir only this user can write to: creates it
 * (mode 0700) when missing, refuses one owned by another user or writable by
 * group or others, with a one-line KittError (code STATE_DIR) naming the fix.
 * The dir itself may be a link (`~/.kitt -> /data/kitt`): its target is checked.
 */
export function checkStateDir(dir: string, options: { uid?: number } = {}): void {
  const uid = options.uid ?? euid();
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST" || code === "ENOTDIR") throw stateError(`state dir ${dir} is not a directory`);
    throw stateError(`cannot create state dir ${dir}: ${code ?? String(err)}`);
  }
  checkPrivate(dir, statSync(dir), "state dir", uid);
}

/**
 * A directory inside the state dir (`logs/`): created 0700 when missing;
 * an existing one must be a real directory (not a link) of this user that
 * others cannot write to.
 */
export function ensurePrivateSubdir(dir: string, options: { uid?: number } = {}): void {
  const uid = options.uid ?? euid();
  try {
    mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
    mkdirSync(dir, { mode: 0o700 });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
      throw stateError(`cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  const st = lstatSync(dir);
  if (st.isSymbolicLink()) throw stateError(`${dir} is a symbolic link: the agent does not follow links in its state dir; remove it`);
  checkPrivate(dir, st, "directory", uid);
}

function openError(path: string, err: unknown): KittError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ELOOP") return stateError(`${path} is a symbolic link: the agent opens no links in its state dir; remove it`);
  if (code === "ENXIO") return stateError(`${path} is not a regular file (a FIFO?): remove it`);
  return stateError(`cannot open ${path}: ${code ?? String(err)}`);
}

/** The opened fd must be a plain file of this user with no other name (a hard link to another file). */
function checkOpened(fd: number, path: string, uid: number | undefined): void {
  const st = fstatSync(fd);
  let problem: string | undefined;
  if (!st.isFile()) problem = `${path} is not a regular file: remove it`;
  else if (uid !== undefined && st.uid !== uid) problem = `${path} is owned by uid ${st.uid}, not by this user (uid ${uid}): remove it`;
  else if (st.nlink > 1) problem = `${path} has ${st.nlink} hard links: the agent writes only files of its own; remove it`;
  if (problem !== undefined) {
    closeSync(fd);
    throw stateError(problem);
  }
}

/**
 * Opens a file in the state dir for appending (mode 0600 when created),
 * never through a symbolic link, never a FIFO or device, never a file of
 * another user or one hard-linked elsewhere. `exclusive` insists on
 * creating it (a name just renamed away, as in log rotation).
 */
export function openPrivateAppend(path: string, options: { exclusive?: boolean; uid?: number } = {}): number {
  const uid = options.uid ?? euid();
  let fd: number;
  try {
    fd = openSync(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | (options.exclusive === true ? O_EXCL : 0), 0o600);
  } catch (err) {
    throw openError(path, err);
  }
  checkOpened(fd, path, uid);
  return fd;
}

/**
 * Creates a new file for writing (O_EXCL: never an existing name, link or
 * not) with `fileMode`. Returns its fd.
 */
export function createExclusive(path: string, fileMode: number): number {
  try {
    return openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, fileMode);
  } catch (err) {
    throw openError(path, err);
  }
}

/**
 * Reads a small regular file (a pid file) without following a link or
 * blocking on a FIFO: at most `maxBytes`. Undefined when it is absent;
 * a KittError when it is anything but a regular file.
 */
export function readSmallRegularFile(path: string, maxBytes = 64): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw openError(path, err);
  }
  try {
    if (!fstatSync(fd).isFile()) throw stateError(`${path} is not a regular file: remove it`);
    const buf = Buffer.alloc(maxBytes);
    const n = readSync(fd, buf, 0, maxBytes, 0);
    return buf.subarray(0, n).toString("utf8");
  } finally {
    closeSync(fd);
  }
}
