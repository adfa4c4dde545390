import { homedir } from "node:os";
import { join } from "node:path";
import { type Logger, silentLogger } from "@kitt/protocol";
import { type EngineDiscovery, type Located, locateEngine } from "./discovery.js";
import { rotateIfLarge } from "./engine-log.js";
import { ENGINE_SPECS, type EngineSpec, type NativeEngineName } from "./engine-specs.js";
import { EngineConfigError, EngineError } from "./errors.js";
import { type InstallOptions, type InstallResult, installEngine } from "./install.js";
import { isSameProcess } from "./proc.js";
import { type FetchLike, portInUse, probeReady } from "./readiness.js";
import { type EngineRecord, EngineRecords } from "./records.js";
import { runStep as defaultRunStep, type RunStep } from "./run-step.js";
import { mapRuntimeConfig } from "./runtime-config.js";
import { spawnEngine, terminate, waitServing } from "./supervise.js";
import { systemdMainPid, systemdStop, systemdUnitActive } from "./systemd.js";

/** discover() plus whether it runs: one element of the heartbeat's `engines` array. */
export interface EngineStatus extends EngineDiscovery {
  running: boolean;
  /** 0 when not running. */
  pid: number;
  /** The port it serves on (when running), else the port it would start on. */
  port: number;
  /** It answered its readiness URL just now. */
  ready: boolean;
  /** Who runs it: the agent (a recorded process) or systemd. */
  managed_by?: "agent" | "systemd";
  log_file?: string;
}

export interface StartOptions {
  /** Each output line of the engine while it comes up. */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
  /** Overrides the engine's default bound for "start means serving". */
  readyTimeoutMs?: number;
}

export interface StartResult {
  pid: number;
  /** The port it actually serves on. */
  port: number;
  already_running: boolean;
  log_file: string;
}

export interface StopResult {
  pid: number;
  /** `SIGTERM`, `SIGKILL`, or `systemctl` when the systemd unit was stopped. */
  stopped_by: "SIGTERM" | "SIGKILL" | "systemctl";
}

/** One native engine: the small interface the agent (and other KITT tools) drive engines through. */
export interface EngineDriver {
  readonly name: NativeEngineName;
  readonly defaultPort: number;
  discover(): Promise<EngineDiscovery>;
  status(): Promise<EngineStatus>;
  start(runtimeConfig: unknown, modelPath?: string, options?: StartOptions): Promise<StartResult>;
  stop(): Promise<StopResult>;
  install(options?: InstallOptions): Promise<InstallResult>;
}

export interface EngineDriverOptions {
  /** The agent's state dir: records and logs go under `<stateDir>/engines/`. */
  stateDir: string;
  /** Environment for probes and engines (PATH decides what is found). */
  env?: NodeJS.ProcessEnv;
  /** Home for `~/.kitt/vllm-venv` and `~/.kitt/bin`. */
  home?: string;
  logger?: Logger;
  runStep?: RunStep;
  fetch?: FetchLike;
  /** Bound of `--version` probes and systemctl calls (default 5 s). */
  probeTimeoutMs?: number;
  /** Bound of `python -c "import vllm"` (default 30 s). */
  importTimeoutMs?: number;
  /** Default "start means serving" bound per engine (else the engine's own: 60 s ollama, 120 s llama.cpp, 10 min vLLM). */
  readyTimeoutMs?: number;
  pollMs?: number;
  /** TERM, then KILL after this (default 10 s). */
  stopGraceMs?: number;
  /** Host engines listen on (default 0.0.0.0: the KITT server and benchmarks reach them from outside). */
  host?: string;
  /** The engine log is rotated (copy-and-truncate) past this size when status() is asked (default 50 MiB). */
  logMaxBytes?: number;
  /** Pythons tried for vLLM (default `<home>/.kitt/vllm-venv/bin/python`, `python3`). */
  pythons?: readonly string[];
  /** `systemctl` to ask about a unit (default `systemctl`; null to never ask). */
  systemctl?: string | null;
  procDir?: string;
}

class NativeEngineDriver implements EngineDriver {
  readonly name: NativeEngineName;
  readonly defaultPort: number;
  private readonly records: EngineRecords;
  private readonly env: NodeJS.ProcessEnv;
  private readonly home: string;
  private readonly logger: Logger;
  private readonly run: RunStep;
  private readonly fetchFn: FetchLike;
  private readonly procDir: string;

  constructor(
    private readonly spec: EngineSpec,
    private readonly options: EngineDriverOptions,
  ) {
    this.name = spec.name;
    this.defaultPort = spec.defaultPort;
    this.records = new EngineRecords(options.stateDir);
    this.env = options.env ?? process.env;
    this.home = options.home ?? homedir();
    this.logger = options.logger ?? silentLogger;
    this.run = options.runStep ?? defaultRunStep;
    this.fetchFn = options.fetch ?? ((url, init) => fetch(url, init));
    this.procDir = options.procDir ?? "/proc";
  }

  private get binDir(): string {
    return join(this.home, ".kitt", "bin");
  }

  private locate(): Promise<Located> {
    return locateEngine(this.spec, {
      env: this.env,
      runStep: this.run,
      binDir: this.binDir,
      pythons: this.options.pythons ?? [join(this.home, ".kitt", "vllm-venv", "bin", "python"), "python3"],
      probeTimeoutMs: this.options.probeTimeoutMs ?? 5_000,
      importTimeoutMs: this.options.importTimeoutMs ?? 30_000,
    });
  }

  async discover(): Promise<EngineDiscovery> {
    const { executable: _executable, ...found } = await this.locate();
    return found;
  }

  private readyUrl(port: number): string {
    return `http://127.0.0.1:${port}${this.spec.readinessPath}`;
  }

  /** The agent's record of this engine when that very process still runs; a stale record is removed. */
  private async liveRecord(): Promise<EngineRecord | undefined> {
    const record = await this.records.read(this.name);
    if (record === undefined) return undefined;
    if (await isSameProcess(record.pid, record.startTime, this.procDir)) return record;
    this.logger.info("engine record is stale (process gone or pid reused); removed", { engine: this.name, pid: record.pid });
    await this.records.remove(this.name);
    return undefined;
  }

  private get systemd(): { unit: string; systemctl: string; timeoutMs: number; env: NodeJS.ProcessEnv; run: RunStep } | undefined {
    const systemctl = this.options.systemctl === undefined ? "systemctl" : this.options.systemctl;
    if (this.spec.systemdUnit === undefined || systemctl === null) return undefined;
    return { unit: this.spec.systemdUnit, systemctl, timeoutMs: this.options.probeTimeoutMs ?? 5_000, env: this.env, run: this.run };
  }

  async status(): Promise<EngineStatus> {
    const found = await this.discover();
    const probeMs = Math.min(this.options.probeTimeoutMs ?? 5_000, 2_000);
    const record = await this.liveRecord();
    if (record !== undefined) {
      await rotateIfLarge(record.logFile, this.options.logMaxBytes ?? 50 * 1024 * 1024).catch(() => false);
      const ready = await probeReady(this.fetchFn, this.readyUrl(record.port), probeMs);
      return { ...found, running: true, pid: record.pid, port: record.port, ready, managed_by: "agent", log_file: record.logFile };
    }
    const systemd = this.systemd;
    if (systemd !== undefined && (await systemdUnitActive(systemd))) {
      const port = this.defaultPort;
      const ready = await probeReady(this.fetchFn, this.readyUrl(port), probeMs);
      return { ...found, running: true, pid: await systemdMainPid(systemd), port, ready, managed_by: "systemd" };
    }
    return { ...found, running: false, pid: 0, port: this.defaultPort, ready: false };
  }

  async start(runtimeConfig: unknown, modelPath = "", options: StartOptions = {}): Promise<StartResult> {
    // Everything the operator gave is checked before anything runs.
    const mapped = mapRuntimeConfig(this.name, this.spec.config, runtimeConfig, this.defaultPort);
    if (typeof modelPath !== "string" || modelPath.startsWith("-") || modelPath.includes("\0")) {
      throw new EngineConfigError("model_path", `model_path must be a path, not ${JSON.stringify(modelPath)}`);
    }
    const current = await this.status();
    if (current.running) {
      options.onLine?.(`${this.name} is already running (pid ${current.pid}, port ${current.port})`);
      return { pid: current.pid, port: current.port, already_running: true, log_file: current.log_file ?? "" };
    }
    const located = await this.locate();
    if (!located.installed) throw new EngineError("ENGINE_NOT_INSTALLED", `${this.name} is not installed (install_engine installs it)`);
    const port = mapped.port;
    if (await portInUse(port)) {
      throw new EngineError("ENGINE_PORT_IN_USE", `port ${port} is already in use by another program; choose another with runtime_config.port`);
    }
    if (!this.spec.takesModel && modelPath !== "") {
      options.onLine?.(`${this.name} loads models on request; model_path ${modelPath} is not passed at start`);
    }
    const launch = this.spec.launch({
      port,
      host: this.options.host ?? "0.0.0.0",
      modelPath: this.spec.takesModel ? modelPath : "",
      flags: mapped.args,
    });
    const command = [located.executable, ...launch.args];
    const logFile = this.records.logFile(this.name);
    options.onLine?.(`Starting ${this.name}: ${command.join(" ")}`);
    const env = { ...this.env, ...launch.env, ...mapped.env };
    const engine = await spawnEngine(located.executable, launch.args, env, logFile, this.procDir);
    const record: EngineRecord = {
      engine: this.name,
      pid: engine.pid,
      startTime: engine.startTime,
      port,
      command,
      logFile,
      startedAt: new Date().toISOString(),
    };
    await this.records.write(record);
    const timeoutMs = options.readyTimeoutMs ?? this.options.readyTimeoutMs ?? this.spec.readyTimeoutMs;
    try {
      await waitServing(engine, {
        url: this.readyUrl(port),
        timeoutMs,
        pollMs: this.options.pollMs ?? 250,
        fetch: this.fetchFn,
        logFile,
        what: `${this.name} (pid ${engine.pid}, port ${port})`,
        ...(options.onLine === undefined ? {} : { onLine: options.onLine }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (err) {
      // A start that did not serve leaves nothing behind.
      await terminate(engine.pid, engine.startTime, this.options.stopGraceMs ?? 10_000, this.procDir).catch(() => undefined);
      await this.records.remove(this.name);
      throw err;
    }
    options.onLine?.(`${this.name} serves on port ${port} (pid ${engine.pid})`);
    this.logger.info("engine started", { engine: this.name, pid: engine.pid, port });
    return { pid: engine.pid, port, already_running: false, log_file: logFile };
  }

  async stop(): Promise<StopResult> {
    const record = await this.liveRecord();
    if (record !== undefined) {
      const signal = await terminate(record.pid, record.startTime, this.options.stopGraceMs ?? 10_000, this.procDir);
      await this.records.remove(this.name);
      this.logger.info("engine stopped", { engine: this.name, pid: record.pid, signal });
      return { pid: record.pid, stopped_by: signal };
    }
    const systemd = this.systemd;
    if (systemd !== undefined && (await systemdUnitActive(systemd))) {
      const pid = await systemdMainPid(systemd);
      await systemdStop(systemd);
      return { pid, stopped_by: "systemctl" };
    }
    throw new EngineError("ENGINE_NOT_RUNNING", `${this.name} is not running`);
  }

  install(options: InstallOptions = {}): Promise<InstallResult> {
    return installEngine(this.name, { env: this.env, home: this.home, binDir: this.binDir, run: this.run, locate: () => this.locate() }, options);
  }
}

/** The driver of one engine; throws a clear error for a name that is not a native engine. */
export function createEngineDriver(name: string, options: EngineDriverOptions): EngineDriver {
  const spec = (ENGINE_SPECS as Record<string, EngineSpec | undefined>)[name];
  if (spec === undefined) {
    throw new EngineError("ENGINE_UNKNOWN", `unknown engine ${JSON.stringify(name)} (native engines: ${Object.keys(ENGINE_SPECS).join(", ")})`);
  }
  return new NativeEngineDriver(spec, options);
}

/** All native engines' drivers, in the heartbeat's order. */
export function createEngineDrivers(options: EngineDriverOptions): EngineDriver[] {
  return Object.keys(ENGINE_SPECS).map((name) => createEngineDriver(name, options));
}
