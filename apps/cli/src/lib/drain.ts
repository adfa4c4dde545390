import { join } from "node:path";

import { KittError } from "@kitt/protocol";

import { loadCliConfig } from "./config.js";
import { DaemonNotRunningError, daemonRequest, errorText } from "./daemon-client.js";
import { clearPidFile, runningAgentPid, type StopDeps, terminateAgent, waitForExit } from "./pid.js";

export interface DrainOutcome {
  pid: number;
  /** True when every job finished and the agent stopped by itself; false when --timeout ran out and it was stopped, cancelling what still ran. */
  drained: boolean;
  /** Jobs running and queued when the drain began. */
  running: number;
  queued: number;
  waitedMs: number;
}

function count(body: unknown, key: string): number {
  const value = (body as Record<string, unknown> | null)?.[key];
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : 0;
}

/**
 * `kitt-agent stop --drain`: asks the agent (POST /api/drain on its local
 * API, with the token) to take no new job, finish the accepted ones and stop,
 * then waits for it to exit. After `timeoutMs` (undefined: no limit) it stops
 * the agent as a plain stop does (SIGTERM: the running job is cancelled and
 * reported) and waits up to the cancel grace plus 30 s for that.
 */
export async function drainAgent(
  configPath: string | undefined,
  timeoutMs: number | undefined,
  onDraining: (state: { pid: number; running: number; queued: number }) => void = () => {},
  deps: StopDeps = {},
): Promise<DrainOutcome> {
  const now = deps.now ?? Date.now;
  const { config } = await loadCliConfig(configPath, { requireServer: false });
  const pidFile = join(config.state_dir, "agent.pid");
  const pid = await runningAgentPid(pidFile, deps.procRoot);
  const plainStop = "kitt-agent stop stops it now, cancelling its running job";
  let res;
  try {
    res = await daemonRequest(config, "POST", "/api/drain", { timeoutMs: 10_000 });
  } catch (err) {
    if (err instanceof DaemonNotRunningError) {
      throw new KittError(`the agent (pid ${pid}) does not answer on its local API, so it cannot be drained (${err.message}); ${plainStop}`, { code: "DRAIN", cause: err });
    }
    throw err;
  }
  if (res.status === 404) {
    throw new KittError(`the running agent (pid ${pid}) does not know how to drain (it predates stop --drain); ${plainStop}, or restart it with this version first`, {
      code: "DRAIN_UNSUPPORTED",
    });
  }
  if (res.status !== 202) throw new KittError(`the agent (pid ${pid}) refused to drain: HTTP ${res.status}: ${errorText(res.body)}`, { code: "DRAIN" });
  const state = { pid, running: count(res.body, "running"), queued: count(res.body, "queued") };
  onDraining(state);
  const started = now();
  if (await waitForExit(pid, timeoutMs, deps)) {
    await clearPidFile(pidFile, pid);
    return { ...state, drained: true, waitedMs: now() - started };
  }
  await terminateAgent(pid, pidFile, (config.cancel_grace_s + 30) * 1000, deps);
  return { ...state, drained: false, waitedMs: now() - started };
}
