import { spawn } from "node:child_process";

/** How a command ended when it did not simply exit. */
export type CommandFailure = "not-found" | "timeout" | "spawn-error" | "exit";

export interface CommandResult {
  /** `command arg...` as run, for messages. */
  commandLine: string;
  /** Exit status; null when the process never started, was killed, or timed out. */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** Absent on exit code 0. */
  failure?: CommandFailure;
  /** One line naming the command and what went wrong; absent on success. */
  message?: string;
}

export interface RunOptions {
  timeoutMs: number;
  /** The child's whole environment; its PATH also decides where `command` is looked up. */
  env?: Record<string, string | undefined>;
  /** Per stream; the rest is dropped. Default 1 MiB. */
  maxOutputBytes?: number;
}

/** Runs `command` with an argument array (never a shell) and never rejects. */
export type CommandRunner = (command: string, args: readonly string[], options: RunOptions) => Promise<CommandResult>;

export function succeeded(result: CommandResult): boolean {
  return result.failure === undefined && result.exitCode === 0;
}

/** The first non-empty line of a command's diagnostics, for one-line messages. */
export function firstLine(text: string, max = 200): string {
  const line = text.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "";
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/**
 * The production runner. The child gets its own process group so that a
 * timeout can kill whatever it started too. On timeout the promise settles at
 * once, without waiting for the child to die: a process stuck in the kernel
 * (nvidia-smi on a wedged driver) ignores even SIGKILL until the driver lets go.
 */
export const runCommand: CommandRunner = (command, args, options) =>
  new Promise<CommandResult>((resolve) => {
    const commandLine = [command, ...args].join(" ");
    const limit = options.maxOutputBytes ?? 1024 * 1024;
    let settled = false;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    // Assigned after spawn, read by settle() which may run before that.
    let timer: ReturnType<typeof setTimeout> | undefined = undefined;

    const settle = (result: Omit<CommandResult, "commandLine" | "stdout" | "stderr">): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        commandLine,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        ...result,
      });
    };

    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(command, [...args], {
        env: (options.env ?? process.env) as NodeJS.ProcessEnv,
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
    } catch (error) {
      // Synchronous refusals: an empty command, a NUL byte in an argument.
      settle({ exitCode: null, failure: "spawn-error", message: `${command}: cannot run (${String(error)})` });
      return;
    }
    const { stdout, stderr } = child;
    if (stdout === null || stderr === null) throw new Error("spawn without pipes");
    stdout.on("data", (chunk: Buffer) => {
      if (outBytes < limit) out.push(chunk.subarray(0, limit - outBytes));
      outBytes += chunk.length;
    });
    stderr.on("data", (chunk: Buffer) => {
      if (errBytes < limit) err.push(chunk.subarray(0, limit - errBytes));
      errBytes += chunk.length;
    });

    timer = setTimeout(() => {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      stdout.destroy();
      stderr.destroy();
      child.unref();
      settle({
        exitCode: null,
        failure: "timeout",
        message: `${command} timed out after ${options.timeoutMs} ms`,
      });
    }, options.timeoutMs);

    child.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") {
        settle({ exitCode: null, failure: "not-found", message: `${command}: not found on PATH` });
      } else {
        settle({
          exitCode: null,
          failure: "spawn-error",
          message: `${command}: cannot run (${error.code ?? error.message})`,
        });
      }
    });
    child.on("close", (code, signal) => {
      if (code === 0) {
        settle({ exitCode: 0 });
        return;
      }
      const detail = firstLine(Buffer.concat(err).toString("utf8")) || firstLine(Buffer.concat(out).toString("utf8"));
      const how = code === null ? `was killed by ${signal ?? "a signal"}` : `exited with code ${code}`;
      settle({
        exitCode: code,
        failure: "exit",
        message: `${command} ${how}${detail === "" ? "" : `: ${detail}`}`,
      });
    });
  });
