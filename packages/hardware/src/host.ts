import { access, readdir, readFile } from "node:fs/promises";
import * as os from "node:os";
import { join } from "node:path";
import { runCommand, type CommandResult, type CommandRunner } from "./run-command.js";

/** Facts the operating system tells without reading files. */
export interface HostOs {
  /** `process.platform`: "linux", "darwin", "win32", ... */
  platform: string;
  /** `uname -m`: "x86_64", "aarch64", ... */
  machine: string;
  /** `uname -s`: "Linux". */
  type: string;
  /** `uname -r`: "6.8.0-45-generic". */
  release: string;
  /** `uname -v`: "#45-Ubuntu SMP PREEMPT_DYNAMIC Fri Aug 30 12:02:04 UTC 2024". */
  version: string;
  hostname: string;
  /** Used where /proc is missing (macOS, Windows). */
  totalMemBytes: number;
  cpuModel: string;
  cpuCount: number;
}

/**
 * Everything detection and preflight learn about the machine goes through
 * this seam: files under `root` (/proc, /sys, /etc), commands run with `env`
 * (whose PATH decides what runs), and the OS facts. Tests point `root` at a
 * temp tree and PATH at a directory of fake executables.
 */
export interface HostProbe {
  /** Prefix of every absolute path read; "/" in production. */
  root: string;
  env: Record<string, string | undefined>;
  os: HostOs;
  run: CommandRunner;
  /** Limit for each spawned probe unless a caller says otherwise. */
  commandTimeoutMs: number;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 5000;

export function currentHostOs(): HostOs {
  const cpus = os.cpus();
  return {
    platform: process.platform,
    machine: os.machine(),
    type: os.type(),
    release: os.release(),
    version: os.version(),
    hostname: os.hostname(),
    totalMemBytes: os.totalmem(),
    cpuModel: cpus[0]?.model.trim() ?? "",
    cpuCount: cpus.length,
  };
}

/** The real machine, with any part replaced. */
export function createHostProbe(overrides: Partial<HostProbe> = {}): HostProbe {
  return {
    root: overrides.root ?? "/",
    env: overrides.env ?? process.env,
    os: overrides.os ?? currentHostOs(),
    run: overrides.run ?? runCommand,
    commandTimeoutMs: overrides.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
  };
}

export function hostPath(host: HostProbe, path: string): string {
  return host.root === "/" ? path : join(host.root, path);
}

/** A file's text, or undefined when it is absent or unreadable: probes are best effort. */
export async function readHostFile(host: HostProbe, path: string): Promise<string | undefined> {
  try {
    return await readFile(hostPath(host, path), "utf8");
  } catch {
    return undefined;
  }
}

export async function hostFileExists(host: HostProbe, path: string): Promise<boolean> {
  try {
    await access(hostPath(host, path));
    return true;
  } catch {
    return false;
  }
}

/** Entry names of a directory, sorted; [] when absent. */
export async function listHostDir(host: HostProbe, path: string): Promise<string[]> {
  try {
    return (await readdir(hostPath(host, path))).sort();
  } catch {
    return [];
  }
}

export function runOnHost(
  host: HostProbe,
  command: string,
  args: readonly string[],
  timeoutMs: number = host.commandTimeoutMs,
): Promise<CommandResult> {
  return host.run(command, args, { timeoutMs, env: host.env });
}
