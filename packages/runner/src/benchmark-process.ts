import { spawn, type ChildProcess } from "node:child_process";

import { KittError } from "@kitt/protocol";

import { LineSplitter } from "./line-splitter.js";

export const DEFAULT_KILL_GRACE_MS = 10_000;
/** After the benchmark exits, how long its pipes may stay open (held by leftovers) before they are cut. */
const PIPE_DRAIN_MS = 5_000;

export type OutputStream = "stdout" | "stderr";
export type StopReason = "cancel" | "timeout";

export interface ProcessOptions {
  /** Executable (a resolved path is best: see findExecutable). */
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called for every line of stdout and stderr, in the order read; must not block. */
  onLine: (line: string, stream: OutputStream) => void;
  /** SIGTERM -> SIGKILL delay when stopping (default 10 s). */
  killGraceMs?: number;
  /** The whole run is stopped after this long (default: no limit). */
  timeoutMs?: number;
  maxLineChars?: number;
  /** After the benchmark exits, how long outsiders may hold its pipes open (default 5 s). */
  pipeDrainMs?: number;
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
 * stdout and stderr are read as fast as they come and never paused, so a
 * slow consumer can never block the benchmark's writes.
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

  private constructor(child: ChildProcess, options: ProcessOptions) {
    this.child = child;
    this.pid = child.pid as number;
    this.graceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.done = this.watch(options);
    if (options.timeoutMs !== undefined) {
      this.timeoutTimer = setTimeout(() => this.stop("timeout"), options.timeoutMs);
    }
  }

  /** Starts the process; rejects with ProcessStartError when it cannot run. */
  static async start(options: ProcessOptions): Promise<BenchmarkProcess> {
    let child: ChildProcess;
    try {
      child = spawn(options.command, [...options.args], {
        cwd: options.cwd,
        env: options.env ?? process.env,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        shell: false,
      });
    } catch (err) {
      throw new ProcessStartError(options.command, err instanceof Error ? err.message : String(err), err);
    }
    if (child.pid === undefined) {
      // spawn reports ENOENT/EACCES asynchronously, with no pid.
      const err = await new Promise<Error>((resolve) => child.once("error", resolve));
      const code = (err as NodeJS.ErrnoException).code;
      const detail = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : err.message;
      throw new ProcessStartError(options.command, detail, err);
    }
    return new BenchmarkProcess(child, options);
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

  private signalGroup(signal: NodeJS.Signals): boolean {
    try {
      process.kill(-this.pid, signal);
      return true;
    } catch {
      // ESRCH: the group is already gone.
      return false;
    }
  }

  private async watch(options: ProcessOptions): Promise<ProcessOutcome> {
    const child = this.child;
    // After a successful spawn, 'error' only reports a failed kill(); the exit still comes.
    child.on("error", () => {});
    const streams: [NodeJS.ReadableStream, OutputStream][] = [];
    if (child.stdout) streams.push([child.stdout, "stdout"]);
    if (child.stderr) streams.push([child.stderr, "stderr"]);
    const backlog = new OutputBacklog(streams.map(([stream]) => stream));
    // `ended`: the pipe is closed (no more input). `processed`: its last line went through onLine.
    const ended: Promise<void>[] = [];
    const processed: Promise<void>[] = [];
    for (const [stream, name] of streams) {
      const splitter = new LineSplitter((line) => options.onLine(line, name), { maxLineChars: options.maxLineChars });
      stream.on("data", (chunk: Buffer) => backlog.add(() => splitter.push(chunk), chunk.length));
      let markEnded: () => void = () => {};
      let markProcessed: () => void = () => {};
      ended.push(new Promise((resolve) => (markEnded = resolve)));
      processed.push(new Promise((resolve) => (markProcessed = resolve)));
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        markEnded();
        backlog.add(() => {
          splitter.end();
          markProcessed();
        }, 0);
      };
      // 'close' also comes after destroy(), which emits no 'end'.
      stream.once("end", finish);
      stream.once("close", finish);
      stream.once("error", finish);
    }
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
    this.exited = true;
    clearTimeout(this.timeoutTimer);
    clearTimeout(this.killTimer);
    // Leftovers of the group (background helpers, grandchildren) go with the leader.
    this.signalGroup("SIGKILL");
    let drainTimer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      Promise.all(ended).then(() => true),
      new Promise<boolean>((resolve) => {
        drainTimer = setTimeout(() => resolve(false), options.pipeDrainMs ?? PIPE_DRAIN_MS);
      }),
    ]);
    clearTimeout(drainTimer);
    if (!drained) {
      // Someone outside the group (setsid) still holds the pipes: stop reading them.
      child.stdout?.destroy();
      child.stderr?.destroy();
    }
    // Every line read reaches onLine before the outcome is known.
    await Promise.all(processed);
    return { exitCode: exit.code, signal: exit.signal, stoppedBy: this.stoppedBy, killed: this.killed };
  }
}

/** Time spent splitting and dispatching lines before the event loop gets a turn (and reads the pipes again). */
const SLICE_MS = 4;
/** Read but unprocessed output beyond which the pipes are paused (the only backpressure there is). */
const MAX_BACKLOG_BYTES = 32 * 1024 * 1024;

/**
 * Decouples reading the benchmark's pipes from processing its lines. Chunks
 * are queued as they are read and processed in time slices, so the event
 * loop keeps draining the pipes while a burst of output is worked through:
 * a benchmark printing as fast as it can is not held back by the agent's
 * per-line work. Arrival order (across stdout and stderr) is kept.
 */
class OutputBacklog {
  private readonly items: { run: () => void; bytes: number }[] = [];
  private head = 0;
  private bytes = 0;
  private scheduled = false;
  private paused = false;

  constructor(private readonly streams: NodeJS.ReadableStream[]) {}

  add(run: () => void, bytes: number): void {
    this.items.push({ run, bytes });
    this.bytes += bytes;
    if (this.bytes > MAX_BACKLOG_BYTES && !this.paused) {
      this.paused = true;
      for (const s of this.streams) s.pause();
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  private drain(): void {
    this.scheduled = false;
    const deadline = performance.now() + SLICE_MS;
    do {
      const item = this.items[this.head++];
      if (item === undefined) break;
      this.bytes -= item.bytes;
      item.run();
    } while (performance.now() < deadline);
    if (this.head >= this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else {
      if (this.head > 1024) {
        this.items.splice(0, this.head);
        this.head = 0;
      }
      this.schedule();
    }
    if (this.paused && this.bytes < MAX_BACKLOG_BYTES / 2) {
      this.paused = false;
      for (const s of this.streams) s.resume();
    }
  }
}

/** `Exit 3`, `Killed by SIGSEGV`: the error text of a failed run. */
export function describeExit(outcome: Pick<ProcessOutcome, "exitCode" | "signal">): string {
  if (outcome.signal !== null) return `Killed by ${outcome.signal}`;
  return `Exit ${outcome.exitCode ?? "unknown"}`;
}

