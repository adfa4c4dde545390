import { readFileSync, readlinkSync } from "node:fs";
import { rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";

import { readSmallRegularFile } from "@kitt/daemon/state-dir";
import { KittError } from "@kitt/protocol";

/**
 * True when an argument is the kitt-agent binary (`kitt-agent`, a link of
 * that name) or a `bin/run.js` whose package is @kitt/cli (a checkout, an npm
 * install, an update's version dir), resolved from the process's own cwd.
 */
function isCliArg(arg: string, pid: number, procRoot: string): boolean {
  if (basename(arg) === "kitt-agent") return true;
  if (basename(arg) !== "run.js" || basename(dirname(arg)) !== "bin") return false;
  try {
    const cwd = readlinkSync(`${procRoot}/${pid}/cwd`);
    const pkg = JSON.parse(readFileSync(join(dirname(dirname(resolve(cwd, arg))), "package.json"), "utf8")) as { name?: unknown };
    return pkg.name === "@kitt/cli";
  } catch {
    return false;
  }
}

export type ProcessCheck =
  | { state: "gone" }
  | { state: "ours"; cmdline: string[] }
  | { state: "foreign"; cmdline: string[] };

/** Whether `pid` is alive and, from /proc/<pid>/cmdline, a kitt-agent. */
export function checkProcess(pid: number, procRoot = "/proc"): ProcessCheck {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return { state: "gone" };
  }
  let cmdline: string[];
  try {
    cmdline = readFileSync(`${procRoot}/${pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "");
  } catch {
    return { state: "gone" };
  }
  // A zombie has an empty command line: it has exited, only its parent has not reaped it.
  if (cmdline.length === 0) return { state: "gone" };
  // Only what comes before the command word counts: `sleep 30 kitt-agent` is not an agent.
  const command = cmdline.indexOf("start");
  const ours = cmdline.slice(0, command === -1 ? undefined : command).some((arg) => isCliArg(arg, pid, procRoot));
  return ours ? { state: "ours", cmdline } : { state: "foreign", cmdline };
}

/** The pid in a pid file: undefined when the file is absent, a KittError when it holds something else. */
export async function readPidFile(path: string): Promise<number | undefined> {
  // Never through a link someone planted, never blocked on a FIFO (KittError STATE_DIR for those).
  const text = readSmallRegularFile(path);
  if (text === undefined) return undefined;
  const pid = Number(text.trim());
  if (!Number.isSafeInteger(pid) || pid <= 1) throw new KittError(`${path} does not hold a process id: ${JSON.stringify(text.trim().slice(0, 40))}`, { code: "PID_FILE" });
  return pid;
}

export interface StopOutcome {
  pid: number;
  waitedMs: number;
}

export interface StopDeps {
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  procRoot?: string;
}

/**
 * The pid of the agent named in the pid file: a NOT_RUNNING KittError when
 * there is none (a stale file is removed), FOREIGN_PID when the file names a
 * process that is not a kitt-agent (never signal that one).
 */
export async function runningAgentPid(pidFile: string, procRoot?: string): Promise<number> {
  const pid = await readPidFile(pidFile);
  if (pid === undefined) throw new KittError(`the agent is not running (no pid file at ${pidFile})`, { code: "NOT_RUNNING" });
  const check = checkProcess(pid, procRoot);
  if (check.state === "gone") {
    await rm(pidFile, { force: true });
    throw new KittError(`the agent is not running: ${pidFile} named process ${pid}, which no longer exists (stale file removed)`, { code: "NOT_RUNNING" });
  }
  if (check.state === "foreign") {
    throw new KittError(
      `process ${pid} named in ${pidFile} is not a kitt-agent (${check.cmdline.join(" ").slice(0, 80)}): not signalled; remove the file if it is stale`,
      { code: "FOREIGN_PID" },
    );
  }
  return pid;
}

function sleeper(deps: StopDeps): (ms: number) => Promise<void> {
  return deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
}

/** Waits until `pid` has exited; false when it still runs after `timeoutMs` (undefined: no limit). */
export async function waitForExit(pid: number, timeoutMs: number | undefined, deps: StopDeps = {}): Promise<boolean> {
  const sleep = sleeper(deps);
  const now = deps.now ?? Date.now;
  const started = now();
  while (checkProcess(pid, deps.procRoot).state !== "gone") {
    if (timeoutMs !== undefined && now() - started >= timeoutMs) return false;
    await sleep(100);
  }
  return true;
}

/** SIGTERM to a checked agent pid, then waits for it to exit and clears its pid file. */
export async function terminateAgent(pid: number, pidFile: string, timeoutMs: number, deps: StopDeps = {}): Promise<void> {
  try {
    process.kill(pid, "SIGTERM");
  } catch (err) {
    throw new KittError(`cannot signal process ${pid}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { code: "SIGNAL", cause: err });
  }
  if (!(await waitForExit(pid, timeoutMs, deps))) {
    throw new KittError(`the agent (pid ${pid}) is still running ${Math.round(timeoutMs / 1000)} s after SIGTERM`, { code: "STOP_TIMEOUT" });
  }
  await clearPidFile(pidFile, pid);
}

/** The agent removes its own pid file; a crash during shutdown may not have. */
export async function clearPidFile(pidFile: string, pid: number): Promise<void> {
  if ((await readPidFile(pidFile).catch(() => undefined)) === pid) await rm(pidFile, { force: true });
}

/**
 * SIGTERM to the agent named in the pid file, then waits for it to exit.
 * Never signals a process that is not a kitt-agent; clears a stale file.
 */
export async function stopAgent(pidFile: string, timeoutMs: number, deps: StopDeps = {}): Promise<StopOutcome> {
  const now = deps.now ?? Date.now;
  const pid = await runningAgentPid(pidFile, deps.procRoot);
  const started = now();
  await terminateAgent(pid, pidFile, timeoutMs, deps);
  return { pid, waitedMs: now() - started };
}
