/**
 * Test helpers: fake benchmark CLIs written as real executable scripts, and
 * /proc checks that a process is really gone.
 */
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Writes an executable `#!/bin/sh` script into `dir` and returns its path. */
export async function writeScript(dir: string, name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

/** True while `pid` exists and is not a zombie (a zombie is dead, just not reaped yet). */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Waits (polling /proc, bounded) until `pid` is gone; returns whether it went. */
export async function waitGone(pid: number, withinMs = 3000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (!(await isAlive(pid))) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !(await isAlive(pid));
}

/** Polls `predicate` until true (bounded); throws with `what` if it never is. */
export async function until(predicate: () => boolean | Promise<boolean>, what: string, withinMs = 5000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}
