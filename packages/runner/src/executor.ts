/**
 * Where a benchmark runs. The job logic (staging, metrics, reporting,
 * cleanup) is the same for every place; an Executor only starts the
 * benchmark with its arguments and mounts, streams its lines, waits for its
 * exit and stops it. One implementation per place: the host (a process
 * group) and a container of the KITT image.
 */
import type { OutputStream, ProcessOutcome, StopReason } from "./benchmark-process.js";

export interface ExecutionRequest {
  commandId: string;
  testId: string;
  /** The benchmark CLI's arguments (`run -m ... -o ...`), without the command itself. */
  args: string[];
  /** The benchmark's environment on the host (a container gets its own, minimal one). */
  env: NodeJS.ProcessEnv;
  /** Fresh output directory; metrics.json is read from it afterwards. */
  outputDir: string;
  /** The local model path given as `-m` (mounted read-only into a container when it is a path). */
  modelPath: string;
  /** Every stdout/stderr line, in the order read; must not block. */
  onLine: (line: string, stream: OutputStream) => void;
  /** Where the executor chooses when to take the next lines (the host's output file), it awaits this first. */
  pace?: () => Promise<void>;
  killGraceMs: number;
  timeoutMs: number | undefined;
  maxLineChars: number | undefined;
}

/** One running benchmark. */
export interface Execution {
  /** For logs and status: `host pid 1234`, `container kitt-run-ab12cd34`. */
  readonly where: string;
  /** The host process (group leader) when it runs on the host. */
  readonly pid?: number;
  /** Resolves once it has ended and every line went through onLine; never rejects. */
  readonly done: Promise<ProcessOutcome>;
  /** TERM now, KILL after the grace period. Idempotent. */
  stop(reason: StopReason): void;
  /** KILL now, for an agent about to exit (resolves when the kill was delivered, as far as it can tell). */
  killNow(): Promise<void>;
}

export interface Executor {
  readonly kind: "host" | "docker";
  /** What runs: `/usr/bin/kitt`, `image kitt:latest (amd64)`. */
  readonly description: string;
  /** The command line a person would type, for the job log. */
  commandLine(args: string[]): string;
  /** Rejects with a one-line error when the benchmark cannot be started at all. */
  start(request: ExecutionRequest): Promise<Execution>;
}
