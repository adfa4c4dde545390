import { spawn } from "node:child_process";
import { setTimeout as delay } from "node:timers/promises";
import { LogFollower, lastLines, openEngineLog } from "./engine-log.js";
import { EngineError } from "./errors.js";
import { isSameProcess, readProcStat } from "./proc.js";
import { type FetchLike, probeReady } from "./readiness.js";

export interface SpawnedEngine {
  pid: number;
  startTime: string;
  /** Resolves with a description of how it ended ("exited with 1", "killed by SIGKILL"). */
  exited: Promise<string>;
}

/**
 * Starts the engine in its own session (so a Ctrl-C to the agent does not
 * reach it, and stop can signal all it started), its output appended to
 * `logFile`, detached from the agent's lifetime.
 */
export async function spawnEngine(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  logFile: string,
  procDir: string,
): Promise<SpawnedEngine> {
  const log = await openEngineLog(logFile);
  let child;
  try {
    child = spawn(command, [...args], { env, detached: true, stdio: ["ignore", log.fd, log.fd] });
  } finally {
    await log.close();
  }
  const exited = new Promise<string>((resolve) => {
    child.once("error", (err) => resolve(`could not start: ${err.message}`));
    child.once("exit", (code, signal) => resolve(signal === null ? `exited with ${code}` : `was killed by ${signal}`));
  });
  child.unref();
  const pid = child.pid;
  if (pid === undefined) {
    const why = await exited;
    throw new EngineError("ENGINE_START_FAILED", `\`${command}\` ${why}`);
  }
  const stat = await readProcStat(pid, procDir);
  if (stat === undefined) {
    const why = await Promise.race([exited, delay(1_000, "vanished")]);
    throw new EngineError("ENGINE_START_FAILED", `\`${command}\` ${why} at once`, { lastLines: await lastLines(logFile, 20) });
  }
  return { pid, startTime: stat.startTime, exited };
}

export interface WaitServingOptions {
  url: string;
  timeoutMs: number;
  pollMs: number;
  fetch: FetchLike;
  logFile: string;
  onLine?: (line: string) => void;
  signal?: AbortSignal;
  /** For messages: `llama_cpp on port 8081`. */
  what: string;
}

/**
 * "Start means serving": polls the readiness URL until it answers 2xx,
 * streaming the engine's new log lines meanwhile. Throws with the engine's
 * last lines when it exits first, when the bound passes, or on cancel; the
 * caller stops what it started.
 */
export async function waitServing(engine: SpawnedEngine, options: WaitServingOptions): Promise<void> {
  const follower = new LogFollower(options.logFile);
  let ended: string | undefined;
  void engine.exited.then((why) => (ended = why));
  const pump = async (flush = false): Promise<void> => {
    for (const line of await follower.read(flush)) options.onLine?.(line);
  };
  const deadline = Date.now() + options.timeoutMs;
  const tail = (): Promise<string[]> => lastLines(options.logFile, 20);
  for (;;) {
    await pump();
    if (options.signal?.aborted === true) {
      throw new EngineError("ENGINE_CANCELLED", `start of ${options.what} was cancelled`, { lastLines: await tail() });
    }
    if (ended !== undefined) {
      await pump(true);
      const lines = await tail();
      const last = lines.length > 0 ? `; last output: ${lines.slice(-5).join(" | ")}` : "";
      throw new EngineError("ENGINE_START_FAILED", `${options.what} ${ended} before it served${last}`, { lastLines: lines });
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      await pump(true);
      const lines = await tail();
      const last = lines.length > 0 ? `; last output: ${lines.slice(-5).join(" | ")}` : "";
      const bound = options.timeoutMs >= 1000 ? `${Math.round(options.timeoutMs / 1000)} s` : `${options.timeoutMs} ms`;
      throw new EngineError("ENGINE_NOT_READY", `${options.what} did not answer ${options.url} within ${bound}${last}`, {
        lastLines: lines,
      });
    }
    if (await probeReady(options.fetch, options.url, Math.min(2_000, Math.max(remaining, 1)))) {
      await pump(true);
      return;
    }
    await delay(Math.min(options.pollMs, Math.max(deadline - Date.now(), 1)));
  }
}

/** Signals the engine's process group; `leaderToo` also the pid itself when it left the group (only when it was just verified). */
function signalGroup(pid: number, signal: NodeJS.Signals, leaderToo: boolean): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // no such group left
  }
  if (!leaderToo) return;
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

async function waitGone(pid: number, startTime: string, ms: number, procDir: string): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (!(await isSameProcess(pid, startTime, procDir))) return true;
    if (Date.now() >= until) return false;
    await delay(50);
  }
}

/**
 * TERM to the engine's process group, KILL after `graceMs`. Signals only the
 * process that has this pid AND start time, so a reused pid is never hit.
 * Returns the signal that ended it.
 */
export async function terminate(pid: number, startTime: string, graceMs: number, procDir: string): Promise<"SIGTERM" | "SIGKILL"> {
  if (!(await isSameProcess(pid, startTime, procDir))) return "SIGTERM";
  signalGroup(pid, "SIGTERM", true);
  if (await waitGone(pid, startTime, graceMs, procDir)) {
    // The leader is gone; whatever it started in its group goes too (the pid itself may be reused now).
    signalGroup(pid, "SIGKILL", false);
    return "SIGTERM";
  }
  const stillOurs = await isSameProcess(pid, startTime, procDir);
  signalGroup(pid, "SIGKILL", stillOurs);
  if (await waitGone(pid, startTime, 5_000, procDir)) return "SIGKILL";
  throw new EngineError("ENGINE_STOP_FAILED", `process ${pid} is still there 5 s after SIGKILL (stuck in the kernel?)`);
}
