import type { CommandRequest } from "@kitt/protocol";
import type { LogStream } from "@kitt/runner";

/** What the local API needs from the job runner (the composition root adapts @kitt/runner to it). */
export type JobState = "queued" | "running" | "completed" | "failed";

export interface JobInfo {
  command_id: string;
  test_id: string;
  type: string;
  state: JobState;
  error?: string;
  created_at?: string;
  started_at?: string;
  finished_at?: string;
}

/** The `end` event of a job's log stream. */
export interface JobEnd {
  status: "completed" | "failed";
  error?: string;
  resultData?: Record<string, unknown>;
}

/** `body`: a command answered at once (stop_container, check_docker) is answered with it, 200. */
export type SubmitResult = { ok: true; body?: Record<string, unknown> } | { ok: false; status: number; error: string };

export interface JobsApi {
  submit(command: CommandRequest): SubmitResult | Promise<SubmitResult>;
  /** Cancels by command id or test id; undefined when no such job is known. */
  cancel(target: { commandId?: string; testId?: string }): JobInfo | undefined | Promise<JobInfo | undefined>;
  get(commandId: string): JobInfo | undefined;
  /** The most recent job of a test. */
  findByTestId?(testId: string): JobInfo | undefined;
  /** The log of the job with this command id, else of the latest job of this test id. */
  logs(id: string): LogStream<JobEnd> | undefined;
  /** The command id of the job logs(id) names (default: `id` itself). */
  logsCommandId?(id: string): string | undefined;
  snapshot(): { running: JobInfo[]; queued: JobInfo[] };
  /** Containers running for jobs now. */
  activeContainers?(): number;
}
