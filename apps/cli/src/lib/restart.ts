import { spawn } from "node:child_process";
import { closeSync } from "node:fs";
import { join } from "node:path";

import { checkStateDir, ensurePrivateSubdir, openPrivateAppend } from "@kitt/daemon/state-dir";
import type { AgentConfig } from "@kitt/protocol";

import { checkProcess, readPidFile, stopAgent } from "./pid.js";
import { restartService, serviceDeps, serviceState } from "./service.js";

/**
 * Restarts the agent onto `entry` (an update's new version): through systemd
 * when the service is installed, else stop (pid file) and start again in the
 * background with its output in <state_dir>/logs/agent-start.log.
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
