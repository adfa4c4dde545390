import type { Logger } from "@kitt/protocol";

import type { JobSpec } from "./command-validation.js";
import type { Execution } from "./executor.js";
import type { JobInfo, JobOutcome, JobState, Reporter } from "./job-types.js";
import { LogHistory } from "./log-history.js";
import { DEFAULT_RING_CHARS, LogStream } from "./log-stream.js";

/**
 * One accepted command from queue to outcome. Its log lines go to its
 * LogStream (for local readers) and to the reporter (for the server).
 */
export class Job {
  readonly spec: JobSpec;
  readonly logs: LogStream<JobOutcome>;
  readonly queuedAt: number;
  startedAt: number | undefined;
  endedAt: number | undefined;
  state: JobState = "queued";
  outcome: JobOutcome | undefined;
  /** Set by cancel(): the reason the job will end with. */
  cancelReason: string | undefined;
  /** The running benchmark (host process or container), while it runs. */
  execution: Execution | undefined;
  /** A run_container job's container (first 12 characters of its id), once started. */
  containerId: string | undefined;
  readonly abort = new AbortController();
  private readonly reporter: Reporter;
  private readonly logger: Logger;

  /** `historyPath`: where the whole log is kept on disk for late readers (none: the ring only). */
  constructor(spec: JobSpec, init: { reporter: Reporter; logger: Logger; ringLines: number; now: number; historyPath?: string }) {
    this.spec = spec;
    this.reporter = init.reporter;
    this.logger = init.logger;
    const history = init.historyPath !== undefined ? new LogHistory(init.historyPath, init.logger) : undefined;
    this.logs = new LogStream<JobOutcome>(init.ringLines, DEFAULT_RING_CHARS, history);
    this.queuedAt = init.now;
  }

  get commandId(): string {
    return this.spec.commandId;
  }

  get testId(): string {
    return this.spec.testId;
  }

  get finished(): boolean {
    return this.state === "completed" || this.state === "failed";
  }

  log(line: string): void {
    if (this.logs.ended) return;
    this.logs.append(line);
    try {
      this.reporter.log(this.testId, line, this.commandId);
    } catch (err) {
      this.logger.error(`reporter.log failed for test ${this.testId}: ${errorText(err)}`);
    }
  }

  /** Asks the job to stop; what that means depends on the stage it is in. */
  requestCancel(reason: string): void {
    if (this.finished || this.cancelReason !== undefined) return;
    this.cancelReason = reason;
    this.abort.abort(new Error(reason));
    this.execution?.stop("cancel");
  }

  info(): JobInfo {
    return {
      commandId: this.commandId,
      testId: this.testId,
      type: this.spec.kind,
      state: this.state,
      modelPath: "modelPath" in this.spec ? this.spec.modelPath : undefined,
      queuedAt: this.queuedAt,
      startedAt: this.startedAt,
      endedAt: this.endedAt,
      outcome: this.outcome,
      lines: this.logs.lastSeq,
      ...(this.containerId !== undefined ? { containerId: this.containerId } : {}),
    };
  }
}

export function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0] ?? text;
}
