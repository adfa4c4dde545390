import { spawn } from "node:child_process";

export interface StepResult {
  /** Exit code; null when the command could not start, timed out, was cancelled or died of a signal. */
  code: number | null;
  /** stdout and stderr as they came (capped). */
  output: string;
  timedOut: boolean;
  cancelled: boolean;
  /** Why the command could not start (`spawn cmake ENOENT`), if so. */
  startError?: string;
}

export interface StepOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Each output line (stdout and stderr) as it arrives. */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
}

/** Runs one command with an argument array; the seam tests feed fake executables to. */
export type RunStep = (command: string, args: readonly string[], options: StepOptions) => Promise<StepResult>;

const OUTPUT_LIMIT = 256 * 1024;
/** After TERM on cancel or timeout, the process group gets this long before KILL. */
const KILL_GRACE_MS = 2_000;

/**
 * Production RunStep: no shell, stdin closed, its own process group (so a
 * build's compilers die with it), output capped and streamed by line; on
 * timeout or cancel TERM to the group, KILL after a short grace, and return.
 */
export const runStep: RunStep = (command, args, options) =>
  new Promise((resolve) => {
    let output = "";
    let settled = false;
    let timedOut = false;
    let cancelled = false;
    const pending = { out: "", err: "" };
    const child = spawn(command, [...args], {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const killGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    let killTimer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      killGroup("SIGTERM");
      killTimer = setTimeout(() => killGroup("SIGKILL"), KILL_GRACE_MS);
      killTimer.unref();
    };
    const finish = (result: StepResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      resolve(result);
    };
    const onAbort = (): void => {
      cancelled = true;
      stop();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, options.timeoutMs);
    if (options.signal?.aborted === true) onAbort();
    else options.signal?.addEventListener("abort", onAbort, { once: true });

    const take = (key: "out" | "err", chunk: string): void => {
      if (output.length < OUTPUT_LIMIT) output += chunk;
      const lines = (pending[key] + chunk).split("\n");
      pending[key] = lines.pop() ?? "";
      for (const line of lines) options.onLine?.(line.replace(/\r$/, ""));
    };
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => take("out", chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => take("err", chunk));
    child.on("error", (err) => finish({ code: null, output, timedOut: false, cancelled: false, startError: err.message }));
    child.on("close", (code) => {
      clearTimeout(killTimer);
      for (const rest of [pending.out, pending.err]) if (rest !== "") options.onLine?.(rest);
      finish({ code: timedOut || cancelled ? null : code, output, timedOut, cancelled });
    });
  });

/** `cmake -B build` exited with 2: last output line. For logs and error messages. */
export function describeStep(command: string, args: readonly string[], result: StepResult, timeoutMs: number): string {
  const line = [command, ...args].join(" ");
  if (result.startError !== undefined) return `\`${line}\` could not start: ${result.startError}`;
  if (result.cancelled) return `\`${line}\` was cancelled`;
  if (result.timedOut) return `\`${line}\` timed out after ${Math.round(timeoutMs / 1000)} s`;
  const last = result.output.trim().split("\n").filter((l) => l.trim() !== "").slice(-3).join(" | ");
  return `\`${line}\` exited with ${result.code ?? "a signal"}${last === "" ? "" : `: ${last}`}`;
}
