import { BenchmarkProcess } from "./benchmark-process.js";
import type { ExecutionRequest, Execution, Executor } from "./executor.js";

/**
 * The benchmark CLI installed on the host, run as the leader of its own
 * process group (see BenchmarkProcess), its output in a file beside its
 * output dir that the agent follows.
 */
export class HostExecutor implements Executor {
  readonly kind = "host";
  readonly description: string;

  /** `executable` is the resolved path; `command` the configured name, for logs. */
  constructor(
    private readonly executable: string,
    private readonly command: string = executable,
  ) {
    this.description = executable;
  }

  commandLine(args: string[]): string {
    return [this.command, ...args].join(" ");
  }

  async start(req: ExecutionRequest): Promise<Execution> {
    const proc = await BenchmarkProcess.start({
      command: this.executable,
      args: req.args,
      env: req.env,
      cwd: req.outputDir,
      // Beside the fresh output dir (so unique), under the runs directory that recovery empties.
      outputFile: `${req.outputDir}.output`,
      onLine: req.onLine,
      pace: req.pace,
      killGraceMs: req.killGraceMs,
      timeoutMs: req.timeoutMs,
      maxLineChars: req.maxLineChars,
    });
    return {
      where: `host pid ${proc.pid}`,
      pid: proc.pid,
      done: proc.done,
      stop: (reason) => proc.stop(reason),
      killNow: async () => proc.killNow(),
    };
  }
}
