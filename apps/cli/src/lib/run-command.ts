import { spawn } from "node:child_process";

import { KittError } from "@kitt/protocol/errors";

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  /** Working directory (default: this process's). */
  cwd?: string;
  /** Let the command talk to the terminal (sudo's password prompt). */
  interactive?: boolean;
}

export type CommandRunner = (command: string, args: string[], options: RunOptions) => Promise<CommandResult>;

const MAX_OUTPUT = 64 * 1024;

/**
 * Runs `command args...` without a shell, bounded by a timeout (SIGKILL when
 * it is exceeded). A command that cannot be started or runs too long throws a
 * KittError naming it; a non-zero exit is returned for the caller to judge.
 */
export const runCommand: CommandRunner = (command, args, options) =>
  new Promise((resolve, reject) => {
    const shown = [command, ...args].join(" ");
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
      stdio: [options.interactive ? "inherit" : "ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      if (stdout.length < MAX_OUTPUT) stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      if (stderr.length < MAX_OUTPUT) stderr += chunk;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs);
    child.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = err.code === "ENOENT" ? "not found on PATH" : err.message;
      reject(new KittError(`cannot run ${command}: ${why}`, { code: "COMMAND_FAILED", cause: err }));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new KittError(`${shown} did not finish within ${Math.round(options.timeoutMs / 1000)} s`, { code: "COMMAND_TIMEOUT" }));
        return;
      }
      resolve({ code: code ?? (signal === null ? 1 : 128), stdout, stderr });
    });
  });

/** The first non-empty line of a command's stderr (or stdout), for a one-line error. */
export function outputLine(result: CommandResult): string {
  const text = `${result.stderr}\n${result.stdout}`;
  return text.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "";
}
