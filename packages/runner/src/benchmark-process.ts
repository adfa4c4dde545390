import { spawn, type ChildProcess } from "node:child_process";

import { KittError } from "@kitt/protocol";

import { errorText } from "./job.js";
import { LineSplitter } from "./line-splitter.js";
import { OutputFile } from "./output-file.js";
import { groupMembers, readProcStat } from "./process-group.js";

export const DEFAULT_KILL_GRACE_MS = 10_000;
/** After the benchmark exits, how long what is left of its group may take to die before its output is read to the end. */
const DRAIN_MS = 5_000;

export type OutputStream = "stdout" | "stderr";
export type StopReason = "cancel" | "timeout";

export interface ProcessOptions {
  /** Executable (a resolved path is best: see findExecutable). */
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * The benchmark's stdout and stderr go to this file (created, must not
   * exist; removed once read): see OutputFile.
   */
  outputFile: string;
  /** Called for every line of output, in the order written; must not block. Lines read from the output file come as "stdout". */
  onLine: (line: string, stream: OutputStream) => void;
  /** Awaited before each read of the output file: the agent may read later, the benchmark never waits. */
  pace?: () => Promise<void>;
  /** SIGTERM -> SIGKILL delay when stopping (default 10 s). */
  killGraceMs?: number;
  /** The whole run is stopped after this long (default: no limit). */
  timeoutMs?: number;
  maxLineChars?: number;
  /** After the benchmark exits, how long the rest of its group may take to die (default 5 s); later writes are not read. */
  drainMs?: number;
}

export interface ProcessOutcome {
  /** The benchmark's exit code, or null when a signal ended it. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the agent stopped it (cancel or timeout) rather than it ending on its own. */
  stoppedBy: StopReason | undefined;
  /** True when SIGTERM was not enough and the group got SIGKILL. */
  killed: boolean;
}

interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The benchmark could not be started at all (missing, not executable, bad arguments). */
export class ProcessStartError extends KittError {
  constructor(command: string, detail: string, cause?: unknown) {
    super(`cannot start ${JSON.stringify(command)}: ${detail}`, { code: "SPAWN_FAILED", cause });
  }
}

/**
 * A benchmark run as the leader of its own process group, so that stopping
 * it reaches everything it started (engines, servers, helper shells): the
 * group gets SIGTERM, then SIGKILL after a grace period. When the leader
 * exits, whatever it left behind in its group is killed too: a stray engine
 * must not hold the GPU for the next job. (A grandchild that calls setsid()
 * leaves the group and is out of reach; that needs cgroups.)
 *
 * Its stdout and stderr go to a file the agent follows (OutputFile), so the
 * benchmark never waits for the agent, however slowly the agent reads.
 */
export class BenchmarkProcess {
  readonly pid: number;
  readonly done: Promise<ProcessOutcome>;
  private readonly child: ChildProcess;
  private readonly graceMs: number;
  private stoppedBy: StopReason | undefined;
  private killed = false;
  private exited = false;
  private killTimer: NodeJS.Timeout | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;

  private constructor(child: ChildProcess, options: ProcessOptions, output: OutputFile, exited: Promise<ExitStatus>) {
    this.child = child;
    this.pid = child.pid as number;
    this.graceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.done = this.watch(options, output, exited);
    if (options.timeoutMs !== undefined) {
      this.timeoutTimer = setTimeout(() => this.stop("timeout"), options.timeoutMs);
    }
  }

  /** Starts the process; rejects with ProcessStartError when it cannot run. */
  static async start(options: ProcessOptions): Promise<BenchmarkProcess> {
    let output: OutputFile;
    try {
      output = await OutputFile.create(options.outputFile);
    } catch (err) {
      throw new ProcessStartError(options.command, `cannot create its output file ${options.outputFile}: ${errorText(err)}`, err);
    }
    let child: ChildProcess;
    try {
      child = spawn(options.command, [...options.args], {
        cwd: options.cwd,
        env: options.env ?? process.env,
        detached: true,
        stdio: ["ignore", output.writeFd, output.writeFd],
        shell: false,
      });
    } catch (err) {
      await output.remove().catch(() => {});
      throw new ProcessStartError(options.command, errorText(err), err);
    }
    // Listen before anything is awaited: a quick benchmark may be gone by then.
    const exited = new Promise<ExitStatus>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    // spawn reports ENOENT/EACCES asynchronously, with no pid.
    const failed = child.pid === undefined ? new Promise<Error>((resolve) => child.once("error", resolve)) : undefined;
    // The benchmark holds its own copy of the write end now.
    await output.closeWriter();
    if (failed !== undefined) {
      const err = await failed;
      await output.remove().catch(() => {});
      const code = (err as NodeJS.ErrnoException).code;
      const detail = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : err.message;
      throw new ProcessStartError(options.command, detail, err);
    }
    return new BenchmarkProcess(child, options, output, exited);
  }

  /** SIGTERM to the whole group now, SIGKILL after the grace period. Idempotent. */
  stop(reason: StopReason = "cancel"): void {
    if (this.exited || this.stoppedBy !== undefined) return;
    this.stoppedBy = reason;
    this.signalGroup("SIGTERM");
    this.killTimer = setTimeout(() => {
      this.killed = true;
      this.signalGroup("SIGKILL");
    }, this.graceMs);
  }

  /** SIGKILL to the whole group now, without a grace period: for an agent that must exit at once. */
  killNow(): void {
    if (this.exited) return;
    this.killed = true;
    this.signalGroup("SIGKILL");
  }

  /** Signal 0 only asks whether the group still has a process. */
  private signalGroup(signal: NodeJS.Signals | 0): boolean {
    try {
      process.kill(-this.pid, signal);
      return true;
    } catch {
      // ESRCH: the group is already gone.
      return false;
    }
  }

  private async watch(options: ProcessOptions, output: OutputFile, exited: Promise<ExitStatus>): Promise<ProcessOutcome> {
    const child = this.child;
    // After a successful spawn, 'error' only reports a failed kill(); the exit still comes.
    child.on("error", () => {});
    // The leader's start time: members left after it exits are told apart from strangers by it.
    const startTicks = readProcStat(this.pid).then((st) => st?.startTicks);
    // stdout and stderr share the file, so one splitter sees every line in the order written.
    const splitter = new LineSplitter((line) => options.onLine(line, "stdout"), { maxLineChars: options.maxLineChars });
    let readError: unknown;
    const following = output.follow((chunk) => splitter.push(chunk), options.pace).catch((err: unknown) => {
      readError = err;
    });
    const exit = await exited;
    this.exited = true;
    clearTimeout(this.timeoutTimer);
    clearTimeout(this.killTimer);
    // Leftovers of the group (background helpers, grandchildren) go with the leader.
    this.signalGroup("SIGKILL");
    // Once the group is gone, nothing in it writes any more: the file is read to its end.
    await this.groupGone(await startTicks, options.drainMs ?? DRAIN_MS);
    output.finish();
    await following;
    if (readError !== undefined) options.onLine(`[kitt-agent] reading the benchmark's output failed: ${errorText(readError)}`, "stderr");
    // Every line written reaches onLine before the outcome is known.
    splitter.end();
    await output.remove().catch(() => {});
    return { exitCode: exit.code, signal: exit.signal, stoppedBy: this.stoppedBy, killed: this.killed };
  }

  /** True once no live process is left in the group (zombies hold no file), false after `timeoutMs`. */
  private async groupGone(startTicks: number | undefined, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let waitMs = 1;
    for (;;) {
      if (!this.signalGroup(0)) return true;
      // Zombies wait for a slow init to reap them; they write nothing. A leader gone before its start
      // time was read leaves 0: every member then counts (its pgid cannot be reused while one lives).
      if ((await groupMembers(this.pid, startTicks ?? 0)).length === 0) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      waitMs = Math.min(waitMs * 2, 50);
    }
  }
}

/** `Exit 3`, `Killed by SIGSEGV`: the error text of a failed run. */
export function describeExit(outcome: Pick<ProcessOutcome, "exitCode" | "signal">): string {
  if (outcome.signal !== null) return `Killed by ${outcome.signal}`;
  return `Exit ${outcome.exitCode ?? "unknown"}`;
}

