import { randomBytes } from "node:crypto";
import { isAbsolute } from "node:path";

import { type BindMount, type ContainerRuntime, ContainerRuntimeError, type ContainerSpec, type OutputStream } from "@kitt/containers";
import { silentLogger, type Logger } from "@kitt/protocol";

import { ProcessStartError, type ProcessOutcome, type StopReason } from "./benchmark-process.js";
import type { Execution, ExecutionRequest, Executor } from "./executor.js";
import { errorText } from "./job.js";
import { LineSplitter } from "./line-splitter.js";

/** Labels every container the agent starts carries; the crash sweep finds them by `kitt.agent`. */
export const LABEL_AGENT = "kitt.agent";
export const LABEL_COMMAND = "kitt.command_id";
export const LABEL_TEST = "kitt.test_id";
export const LABEL_ROLE = "kitt.role";

/** Where the engine's socket appears inside the container (KITT starts engine containers as siblings). */
const CONTAINER_DOCKER_SOCKET = "/var/run/docker.sock";
/** After the container exits, how long its log stream may take to deliver the rest. */
const LOG_DRAIN_MS = 5_000;
/** Beyond the grace period the engine itself applies, before the agent sends SIGKILL on its own. */
const STOP_SLACK_MS = 5_000;

export interface ContainerExecutorOptions {
  runtime: ContainerRuntime;
  /** The image reference to run. */
  image: string;
  /** Architecture, for the description. */
  architecture?: string;
  /** Value of the `kitt.agent` label (the agent's name). */
  agentLabel: string;
  /** Request every GPU through the engine's device requests. */
  gpus: boolean;
  /** The engine's socket on the host, mounted at /var/run/docker.sock (none over TCP). */
  dockerSocket?: string | undefined;
  /** The entry point (default `kitt`). */
  entrypoint?: string;
  logger?: Logger;
}

/** `kitt-run-<first 8 characters of the command id>`, as the original agent names them. */
export function benchmarkContainerName(commandId: string): string {
  return `kitt-run-${commandId.slice(0, 8)}`;
}

/**
 * Arguments inside the container: those of a host run plus `--auto-pull`
 * (KITT pulls the engine image it needs), placed before `--mode`.
 */
export function containerArgs(args: string[]): string[] {
  const out = [...args];
  const mode = out.indexOf("--mode");
  out.splice(mode === -1 ? out.length : mode, 0, "--auto-pull");
  return out;
}

/**
 * Runs `kitt` in the KITT image: host network, the engine's socket, the
 * output dir and the model bind-mounted at the same paths (the model
 * read-only), labels naming the agent, command and test. The container is
 * not auto-removed: its exit code is read, then the agent removes it,
 * whatever happened.
 */
export class ContainerExecutor implements Executor {
  readonly kind = "docker";
  readonly description: string;
  private readonly logger: Logger;

  constructor(private readonly opts: ContainerExecutorOptions) {
    this.description = `image ${opts.image}${opts.architecture ? ` (${opts.architecture})` : ""}`;
    this.logger = opts.logger ?? silentLogger;
  }

  commandLine(args: string[]): string {
    return [`docker run ${this.opts.image}`, this.opts.entrypoint ?? "kitt", ...containerArgs(args)].join(" ");
  }

  async start(req: ExecutionRequest): Promise<Execution> {
    const rt = this.opts.runtime;
    const mounts: BindMount[] = [{ source: req.outputDir, target: req.outputDir, readOnly: false }];
    if (isAbsolute(req.modelPath)) mounts.push({ source: req.modelPath, target: req.modelPath, readOnly: true });
    if (this.opts.dockerSocket !== undefined) mounts.push({ source: this.opts.dockerSocket, target: CONTAINER_DOCKER_SOCKET, readOnly: false });
    const spec: ContainerSpec = {
      name: benchmarkContainerName(req.commandId),
      image: this.opts.image,
      entrypoint: [this.opts.entrypoint ?? "kitt"],
      cmd: containerArgs(req.args),
      env: { PYTHONUNBUFFERED: "1" },
      labels: { [LABEL_AGENT]: this.opts.agentLabel, [LABEL_COMMAND]: req.commandId, [LABEL_TEST]: req.testId, [LABEL_ROLE]: "benchmark" },
      mounts,
      networkMode: "host",
      gpus: this.opts.gpus,
      workingDir: req.outputDir,
    };
    const { execution } = await launchContainer(rt, spec, req, this.logger, { uniqueName: true });
    return execution;
  }
}

/** How a launched container's output and stop are handled. */
export type ContainerIo = Pick<ExecutionRequest, "onLine" | "killGraceMs" | "timeoutMs" | "maxLineChars">;

/**
 * Creates and starts a container and follows it: output line by line, the
 * exit, the removal. `uniqueName`: a taken name gets a random suffix instead
 * of failing. Rejects with ProcessStartError when it cannot start (nothing
 * is left behind).
 */
export async function launchContainer(
  rt: ContainerRuntime,
  spec: ContainerSpec,
  io: ContainerIo,
  logger: Logger,
  options: { uniqueName?: boolean } = {},
): Promise<{ id: string; name: string; execution: Execution }> {
  const what = `docker run ${spec.image}`;
  let id: string;
  let name = spec.name;
  try {
    id = await rt.createContainer(spec);
  } catch (err) {
    // 409: the name is taken (another job whose id starts alike).
    if (!(options.uniqueName === true && err instanceof ContainerRuntimeError && err.statusCode === 409)) throw new ProcessStartError(what, errorText(err), err);
    name = `${spec.name}-${randomBytes(3).toString("hex")}`;
    try {
      id = await rt.createContainer({ ...spec, name });
    } catch (err2) {
      throw new ProcessStartError(what, errorText(err2), err2);
    }
  }
  const execution = new ContainerExecution(rt, id, name, io, logger);
  try {
    await execution.attach();
    await rt.startContainer(id);
  } catch (err) {
    execution.detach();
    await rt.removeContainer(id, { force: true }).catch(() => {});
    throw new ProcessStartError(what, errorText(err), err);
  }
  execution.begin();
  return { id, name, execution };
}

class ContainerExecution implements Execution {
  readonly where: string;
  done!: Promise<ProcessOutcome>;
  private readonly splitters = new Map<OutputStream, LineSplitter>();
  private readonly follow = new AbortController();
  /** The attach stream's end, when attached before start; else the log is followed. */
  private attached: Promise<void> | undefined;
  private stoppedBy: StopReason | undefined;
  private killed = false;
  private exited = false;
  private killTimer: NodeJS.Timeout | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly rt: ContainerRuntime,
    private readonly id: string,
    name: string,
    private readonly req: ContainerIo,
    private readonly logger: Logger,
  ) {
    this.where = `container ${name} (${id.slice(0, 12)})`;
  }

  /** Attaches to the output before start; an engine that will not attach is followed through its log instead. */
  async attach(): Promise<void> {
    if (this.rt.attachOutput === undefined) return;
    try {
      const { finished } = await this.rt.attachOutput(this.id, { onData: this.onData, signal: this.follow.signal });
      this.attached = finished;
    } catch (err) {
      this.logger.debug(`attaching to ${this.where} failed, following its log instead: ${errorText(err)}`);
    }
  }

  /** Drops the attach stream of a container that never started. */
  detach(): void {
    this.follow.abort();
  }

  /** Called once the container runs. */
  begin(): void {
    this.done = this.watch();
    if (this.req.timeoutMs !== undefined) this.timeoutTimer = setTimeout(() => this.stop("timeout"), this.req.timeoutMs);
  }

  private readonly onData = (chunk: Buffer, stream: OutputStream): void => {
    let s = this.splitters.get(stream);
    if (s === undefined) {
      s = new LineSplitter((line) => this.req.onLine(line, stream), { maxLineChars: this.req.maxLineChars });
      this.splitters.set(stream, s);
    }
    s.push(chunk);
  };

  stop(reason: StopReason): void {
    if (this.exited || this.stoppedBy !== undefined) return;
    this.stoppedBy = reason;
    const graceS = Math.ceil(this.req.killGraceMs / 1000);
    // The engine sends the image's stop signal, then SIGKILL after graceS. Should it not answer, the agent kills.
    this.rt.stopContainer(this.id, graceS).catch((err: unknown) => this.logger.warn(`stopping ${this.where} failed: ${errorText(err)}`));
    this.killTimer = setTimeout(() => void this.killNow(), graceS * 1000 + STOP_SLACK_MS);
  }

  async killNow(): Promise<void> {
    if (this.exited) return;
    this.killed = true;
    await this.rt.killContainer(this.id).catch((err: unknown) => this.logger.warn(`killing ${this.where} failed: ${errorText(err)}`));
  }

  private async watch(): Promise<ProcessOutcome> {
    const follow = this.follow;
    const following = (this.attached ?? this.rt.followOutput(this.id, { onData: this.onData, signal: follow.signal }))
      .catch((err: unknown) => this.req.onLine(`[agent] reading the container's output failed: ${errorText(err)}`, "stderr"));
    let exitCode: number;
    try {
      const status = await this.rt.waitContainer(this.id);
      exitCode = status.exitCode;
      if (status.error !== undefined) this.req.onLine(`[agent] the container engine reported: ${status.error}`, "stderr");
    } catch (err) {
      // The engine went away mid-run: the container's fate is unknown, the run is failed.
      this.req.onLine(`[agent] lost the container: ${errorText(err)}`, "stderr");
      exitCode = -1;
    }
    this.exited = true;
    clearTimeout(this.timeoutTimer);
    clearTimeout(this.killTimer);
    let drainTimer: NodeJS.Timeout | undefined;
    await Promise.race([following, new Promise<void>((resolve) => (drainTimer = setTimeout(resolve, LOG_DRAIN_MS)))]);
    clearTimeout(drainTimer);
    follow.abort();
    await following;
    for (const s of this.splitters.values()) s.end();
    await this.rt.removeContainer(this.id, { force: true }).catch((err: unknown) => this.logger.warn(`removing ${this.where} failed (the next start sweeps it): ${errorText(err)}`));
    // 137 = 128 + SIGKILL: after a stop that ran out of grace, the kill was ours.
    if (this.stoppedBy !== undefined && exitCode === 137) this.killed = true;
    return { exitCode, signal: null, stoppedBy: this.stoppedBy, killed: this.killed };
  }
}
