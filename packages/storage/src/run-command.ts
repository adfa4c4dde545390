import { spawn } from "node:child_process";

export interface CommandResult {
  /** Exit code; null when the command could not start, timed out or died of a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Why the command could not start (e.g. `spawn mount ENOENT`), if so. */
  startError?: string;
}

export interface RunCommandOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs one command with an argument array; the seam tests replace or feed fake executables to. */
export type RunCommand = (command: string, args: readonly string[], options: RunCommandOptions) => Promise<CommandResult>;

const OUTPUT_LIMIT = 64 * 1024;

/**
 * Production RunCommand: no shell, stdin closed, output capped, and on timeout
 * SIGKILL and return at once. A `mount` stuck on a dead NFS server can sit in
 * uninterruptible sleep, so waiting for its exit after the kill could hang us too.
 */
export const runCommand: RunCommand = (command, args, options) =>
  new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let settled = false;
    const finish = (result: CommandResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const child = spawn(command, [...args], {
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish({ code: null, stdout, stderr, timedOut: true });
    }, options.timeoutMs);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      if (stdout.length < OUTPUT_LIMIT) stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      if (stderr.length < OUTPUT_LIMIT) stderr += chunk;
    });
    child.on("error", (err) => finish({ code: null, stdout, stderr, timedOut: false, startError: err.message }));
    child.on("close", (code) => finish({ code, stdout, stderr, timedOut: false }));
  });

/** `mount -t nfs a b` (42, timed out after 60 s): stderr first line. For logs and error messages. */
export function describeFailure(command: string, args: readonly string[], result: CommandResult, timeoutMs: number): string {
  const line = [command, ...args].join(" ");
  if (result.startError !== undefined) return `\`${line}\` could not start: ${result.startError}`;
  if (result.timedOut) {
    const limit = timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`;
    return `\`${line}\` timed out after ${limit}`;
  }
  const err = result.stderr.trim().split("\n").filter((l) => l.trim() !== "").join(" | ");
  return `\`${line}\` exited with ${result.code ?? "a signal"}${err === "" ? "" : `: ${err}`}`;
}
