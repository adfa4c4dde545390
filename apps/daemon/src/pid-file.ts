import { closeSync, fsyncSync, readFileSync, writeSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

import { KittError } from "@kitt/protocol";

import { createExclusive, readSmallRegularFile } from "./state-dir.js";

/**
 * True when `pid` is a live Node process running kitt-agent (its entry point
 * among the arguments, or the process title `kitt-agent` alone, which
 * replaces the arguments in /proc/<pid>/cmdline). Anything else that merely mentions the name, such as
 * `journalctl -u kitt-agent` on a recycled pid, is not an agent.
 */
export function isAgentProcess(pid: number, markers: string[] = ["kitt-agent", "@kitt/daemon", "apps/cli/bin/run.js", "apps/daemon"]): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "");
    // An agent that set its process title (kitt-agent start) shows only that title.
    if (args.length === 1 && args[0] === "kitt-agent") return true;
    const exe = basename(args[0] ?? "");
    if (!/^node(js)?(\d+)?$/.test(exe) && exe !== "kitt-agent") return false;
    return args.slice(1).some((a) => markers.some((m) => a.includes(m)));
  } catch {
    return false;
  }
}

/** The pid in a pid file; undefined when absent or anything but a small regular file holding a pid (a link, a FIFO: never followed or waited on). */
export async function readPid(path: string): Promise<number | undefined> {
  try {
    const n = Number(readSmallRegularFile(path)?.trim() ?? "");
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Claims the pid file for this process: refuses when it names a live agent,
 * replaces a stale one. Returns a release function that removes the file
 * only while it still holds our pid.
 */
export async function claimPidFile(
  path: string,
  options: { pid?: number; isAgent?: (pid: number) => boolean } = {},
): Promise<() => Promise<void>> {
  const pid = options.pid ?? process.pid;
  const isAgent = options.isAgent ?? ((p: number) => isAgentProcess(p));
  const existing = await readPid(path);
  if (existing !== undefined && existing !== pid && isAgent(existing)) {
    throw new KittError(`kitt-agent is already running (pid ${existing}, ${path}); stop it first with kitt-agent stop`, { code: "ALREADY_RUNNING" });
  }
  // A predictable name: created new (O_EXCL), so a link planted there is removed, never written through.
  const tmp = join(dirname(path), `.agent.pid.${pid}.tmp`);
  let fd: number;
  try {
    fd = createExclusive(tmp, 0o644);
  } catch {
    await rm(tmp, { force: true }).catch(() => undefined);
    fd = createExclusive(tmp, 0o644);
  }
  try {
    writeSync(fd, `${pid}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  await rename(tmp, path);
  return async () => {
    if ((await readPid(path)) === pid) await rm(path, { force: true });
  };
}
