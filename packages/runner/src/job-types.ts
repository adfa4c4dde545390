import type { ResultReport, StatusUpdate } from "@kitt/protocol";

/**
 * Where a report belongs beyond its test: `job` is the job's own log stream
 * (its command id: two jobs of one test keep apart), `key` names the
 * message so that a crash recovery can tell whether it is already queued.
 */
export interface ReportRef {
  job?: string;
  key?: string;
}

/**
 * Where a job's outcome goes. The daemon wires it to the log shipper and the
 * durable outbox; the runner calls it in order: `running` (for a job that
 * starts), log lines, then the result and exactly one terminal status.
 * `log` must not block (the benchmark's output is read through it).
 */
export interface Reporter {
  status(testId: string, update: StatusUpdate, ref?: ReportRef): void | Promise<void>;
  log(testId: string, line: string, job?: string): void;
  /** `testId` is the job's, so that its log lines can be delivered before its result. */
  result(testId: string, report: ResultReport, ref?: ReportRef): void | Promise<void>;
  /** Messages with these keys wait (are not sent) until released: their job is not yet marked done on disk. */
  hold?(keys: readonly string[]): void;
  release?(keys: readonly string[]): void;
  /** Whether a message with this key waits to be sent (crash recovery). */
  hasPending?(key: string): boolean;
  /** Starts delivering what waits, once crash recovery has looked at it. */
  startDelivery?(): void;
}

export interface ResolveOptions {
  /** Progress of the staging, one human line at a time. */
  onLog: (line: string) => void;
  /** Aborted when the job is cancelled while staging. */
  signal: AbortSignal;
}

/** A model made available locally for one job. */
export interface StagedModel {
  /** What the benchmark gets as `-m`. */
  localPath: string;
  /** The job is done with it (the resolver may count users). */
  release(): void | Promise<void>;
  /**
   * False when nothing was staged (a registry name, a path used in place):
   * auto_cleanup then leaves it alone. Absent means true.
   */
  staged?: boolean;
}

export interface EvictOptions {
  onLog: (line: string) => void;
  /** The staged copy, when the runner knows it (auto_cleanup after a job). */
  localPath?: string;
}

/**
 * The runner's view of model storage: the daemon adapts @kitt/storage to it.
 * Model paths are the ones the server sends (a share path, a local path or
 * a registry name); mapping them to staged copies is the resolver's job.
 */
export interface ModelResolver {
  resolve(modelPath: string, options: ResolveOptions): Promise<StagedModel>;
  /** Removes the local copy of one model (nothing to do for one never staged). */
  evict(modelPath: string, options: EvictOptions): Promise<void>;
  /** Removes every local copy (`cleanup_storage` with `__cleanup__`). */
  cleanupAll(options: EvictOptions): Promise<void>;
}

export type JobState = "queued" | "running" | "completed" | "failed";

export interface JobOutcome {
  status: "completed" | "failed";
  /** Set when failed: the one-line reason sent to the server. */
  error?: string;
  resultData?: Record<string, unknown>;
  /** The benchmark's exit code, when one ran and exited (for the agent's log). */
  exitCode?: number;
}

/** A snapshot of a job, for status pages and the daemon's API. */
export interface JobInfo {
  commandId: string;
  testId: string;
  type: string;
  state: JobState;
  modelPath: string | undefined;
  queuedAt: number;
  startedAt: number | undefined;
  endedAt: number | undefined;
  outcome: JobOutcome | undefined;
  /** Lines logged so far (also the seq of the last one). */
  lines: number;
  /** The container of a run_container job, once started. */
  containerId?: string;
}
