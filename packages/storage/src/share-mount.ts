import path from "node:path";
import { readdir, realpath, stat } from "node:fs/promises";
import { describeFailure, type RunCommand } from "./run-command.js";
import { readMountPoints } from "./mountinfo.js";
import { errnoCode, reason } from "./errors.js";

export interface MountTimeouts {
  /** `mount <mountpoint>` and `[sudo -n] mount -t nfs ...`. */
  mountMs: number;
  /** `sudo -n mkdir -p <mountpoint>`. */
  mkdirMs: number;
  /** `mountpoint -q <dir>`, used only when mountinfo cannot be read. */
  mountpointMs: number;
}

export const DEFAULT_MOUNT_TIMEOUTS: MountTimeouts = { mountMs: 60_000, mkdirMs: 15_000, mountpointMs: 10_000 };

export interface MountDeps {
  runCommand: RunCommand;
  env: NodeJS.ProcessEnv;
  mountInfoPath: string;
  /** `mkdir -p` without privileges; EACCES/EPERM from it triggers `sudo -n mkdir -p` (not as root). */
  mkdir: (dir: string) => Promise<void>;
  /** The agent's user id: root runs `mount` itself, anyone else through `sudo -n`. */
  uid: number;
  timeouts: MountTimeouts;
  log: (level: "info" | "warn", message: string) => void;
}

export interface MountOutcome {
  mounted: boolean;
  /** How the share became available, or why not. */
  how: string;
  /** Each command that failed, with its stderr: goes into the job's error when nothing works. */
  failures: string[];
}

async function isMountPoint(dir: string, deps: MountDeps): Promise<boolean> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch {
    return false;
  }
  const points = await readMountPoints(deps.mountInfoPath);
  if (points !== undefined) return points.includes(real);
  const args = ["-q", real];
  const result = await deps.runCommand("mountpoint", args, { timeoutMs: deps.timeouts.mountpointMs, env: deps.env });
  if (result.code === 0) return true;
  if (result.code !== 1 && result.code !== 32) {
    deps.log("warn", `cannot tell whether ${real} is mounted: ${describeFailure("mountpoint", args, result, deps.timeouts.mountpointMs)}`);
  }
  return false;
}

async function isNonEmptyDir(dir: string): Promise<boolean> {
  try {
    if (!(await stat(dir)).isDirectory()) return false;
    return (await readdir(dir)).length > 0;
  } catch {
    return false;
  }
}

/** Whether the share is usable: a mount point, or a non-empty directory (bind mount, symlink, local copy). */
export async function shareAvailable(mount: string, deps: MountDeps): Promise<string | undefined> {
  if (await isMountPoint(mount, deps)) return "already mounted";
  if (await isNonEmptyDir(mount)) return "non-empty directory";
  return undefined;
}

async function run(command: string, args: string[], timeoutMs: number, deps: MountDeps, failures: string[]): Promise<boolean> {
  deps.log("info", `running ${[command, ...args].join(" ")}`);
  const result = await deps.runCommand(command, args, { timeoutMs, env: deps.env });
  if (result.code === 0) return true;
  const failure = describeFailure(command, args, result, timeoutMs);
  deps.log("warn", failure);
  failures.push(failure);
  return false;
}

async function ensureMountPointDir(mount: string, deps: MountDeps, failures: string[]): Promise<boolean> {
  try {
    await deps.mkdir(mount);
    return true;
  } catch (err) {
    const code = errnoCode(err);
    // Root was refused already: sudo would change nothing.
    if ((code !== "EACCES" && code !== "EPERM") || deps.uid === 0) {
      const failure = `cannot create mount point ${mount}: ${reason(err)}`;
      deps.log("warn", failure);
      failures.push(failure);
      return false;
    }
  }
  return run("sudo", ["-n", "mkdir", "-p", "--", mount], deps.timeouts.mkdirMs, deps, failures);
}

/** The mount attempt in flight per mount point (resolved path), in this process. */
const inFlight = new Map<string, Promise<MountOutcome>>();

/**
 * Make the share available at `mount`: accept it if it already is, else
 * create the mount point, try `mount <mountpoint>` (an fstab entry), then
 * `mount -t nfs <source> <mountpoint>`, through `sudo -n` unless the agent
 * runs as root (a root host need not have sudo at all). Never throws for a failed
 * command: the failures come back for the caller's error message.
 *
 * Single-flight per mount point: concurrent resolves on an unmounted share
 * would otherwise each run `mount`, and the second fails on the busy mount
 * point. Callers that arrive while an attempt runs wait for it, then check
 * availability again themselves.
 */
export function ensureShareMounted(mount: string, source: string, deps: MountDeps): Promise<MountOutcome> {
  const key = path.resolve(mount);
  const running = inFlight.get(key);
  if (running !== undefined) {
    deps.log("info", `waiting for the mount of ${mount} already in progress`);
    return running.then(async (outcome) => {
      const now = await shareAvailable(mount, deps);
      return now !== undefined ? { mounted: true, how: now, failures: [] } : outcome;
    });
  }
  const attempt = mountOnce(mount, source, deps).finally(() => inFlight.delete(key));
  inFlight.set(key, attempt);
  return attempt;
}

async function mountOnce(mount: string, source: string, deps: MountDeps): Promise<MountOutcome> {
  const failures: string[] = [];
  const already = await shareAvailable(mount, deps);
  if (already !== undefined) return { mounted: true, how: already, failures };

  if (!(await ensureMountPointDir(mount, deps, failures))) {
    return { mounted: false, how: `mount point ${mount} could not be created`, failures };
  }
  if (await run("mount", [mount], deps.timeouts.mountMs, deps, failures)) {
    if ((await shareAvailable(mount, deps)) !== undefined) return { mounted: true, how: "mounted from fstab", failures };
    const failure = `\`mount ${mount}\` succeeded but ${mount} is still empty and not a mount point`;
    deps.log("warn", failure);
    failures.push(failure);
  }
  if (source === "") {
    return { mounted: false, how: `no model_share_source to mount on ${mount}`, failures };
  }
  const nfs = ["mount", "-t", "nfs", source, mount];
  const [command, ...args] = deps.uid === 0 ? nfs : ["sudo", "-n", ...nfs];
  if (await run(command as string, args, deps.timeouts.mountMs, deps, failures)) {
    if ((await shareAvailable(mount, deps)) !== undefined) return { mounted: true, how: `mounted ${source}`, failures };
    const failure = `\`${[command, ...args].join(" ")}\` succeeded but ${mount} is still empty and not a mount point`;
    deps.log("warn", failure);
    failures.push(failure);
  }
  return { mounted: false, how: `could not mount ${source} on ${mount}`, failures };
}
