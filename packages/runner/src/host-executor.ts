import { BenchmarkProcess } from "./benchmark-process.js";
import type { ExecutionRequest, Execution, Executor } from "./executor.js";

/**
 * The benchmark CLI installed on the host, run as the leader of its own
 * process group (see BenchmarkProcess).
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
      onLine: req.onLine,
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
