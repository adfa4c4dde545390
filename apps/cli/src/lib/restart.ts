import { spawn } from "node:child_process";
import { closeSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { checkStateDir, ensurePrivateSubdir, openPrivateAppend } from "@kitt/daemon/state-dir";
import type { AgentConfig } from "@kitt/protocol";

import { checkProcess, readPidFile, stopAgent } from "./pid.js";
import { restartService, serviceDeps, serviceState } from "./service.js";

/**
 * The controlling terminal of `pid` (`tty_nr` of /proc/<pid>/stat, as
 * major:minor), or undefined when it has none (a service, a detached or
 * setsid-started process).
 */
export function controllingTerminal(pid: number, procRoot = "/proc"): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`${procRoot}/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // Fields after the ")" closing the command name: state ppid pgrp session tty_nr ...
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ttyNr = Number(fields[4]);
  if (!Number.isInteger(ttyNr) || ttyNr === 0) return undefined;
  const major = (ttyNr >> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00);
  return major === 136 ? `/dev/pts/${minor}` : major === 4 ? `/dev/tty${minor}` : `tty ${major}:${minor}`;
}

/**
 * Restarts the agent onto `entry` (an update's new version): through systemd
 * when the service is installed, else stop (pid file) and start again in the
 * background with its output in <state_dir>/logs/agent-start.log. An agent
 * in the foreground on a terminal is left alone (the message says so).
 */
export async function restartAgent(config: AgentConfig, configPath: string, entry: string): Promise<string> {
  const deps = serviceDeps();
  if ((await serviceState(deps)).installed) {
    await restartService(deps);
    return "restarted the kitt-agent service (systemctl restart)";
  }
  const pidFile = join(config.state_dir, "agent.pid");
  const pid = await readPidFile(pidFile).catch(() => undefined);
  if (pid === undefined || checkProcess(pid).state !== "ours") {
    return "the agent is not running: start it with kitt-agent start";
  }
  // An operator watching it in a terminal must not find it replaced by a detached process.
  const tty = controllingTerminal(pid);
  if (tty !== undefined) {
    return `the agent (pid ${pid}) runs in the foreground on a terminal (${tty}): not replaced behind its back; stop it (Ctrl-C) and run kitt-agent start to run the new version`;
  }
  await stopAgent(pidFile, (config.cancel_grace_s + 30) * 1000);
  // The same rules as the daemon's: a state dir of this user only, no name opened through a link.
  checkStateDir(config.state_dir);
  const logs = join(config.state_dir, "logs");
  ensurePrivateSubdir(logs);
  const out = openPrivateAppend(join(logs, "agent-start.log"));
  try {
    const child = spawn(process.execPath, [entry, "start"], {
      detached: true,
      stdio: ["ignore", out, out],
      env: { ...process.env, KITT_AGENT_CONFIG: configPath },
    });
    child.unref();
    return `stopped pid ${pid} and started the new version (pid ${child.pid ?? "?"}, output in ${join(logs, "agent-start.log")})`;
  } finally {
    closeSync(out);
  }
}
