import { readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";

import { GpuSampler, detectSystem, registrationFields, type DetectOptions, type GpuSnapshot } from "@kitt/hardware";
import { HeartbeatLoop, type HeartbeatLoopOptions } from "@kitt/heartbeat";
import { type AgentConfig, assertTlsPair, KittServerClient, type RegisterRequest } from "@kitt/protocol";
import { detectCapabilities, DockerRuntime, dockerSocketPath, type ContainerRuntime } from "@kitt/containers";
import { executionPlanner, JobRunner, ServerReporter, stateDiskProblem, sweepContainers } from "@kitt/runner";
import { ModelStore } from "@kitt/storage";

import { storageResolver, runnerJobsApi } from "./adapters.js";
import { createApiApp } from "./api-app.js";
import { type ApiLimits, createApiServer, resolveApiLimits } from "./api-server.js";
import { agentMetrics } from "./agent-metrics.js";
import { reportLostDispatches } from "./lost-dispatches.js";
import { type AgentLogger, createAgentLogger, type LogFormat } from "./logging.js";
import { Drainer } from "./drain.js";
import { engineCatalog } from "./engines.js";
import { claimPidFile } from "./pid-file.js";
import { checkStateDir } from "./state-dir.js";
import { AGENT_VERSION, REPORTED_VERSION } from "./version.js";

export const SHUTDOWN_REASON = "Agent shutting down";
export const RESTART_REASON = "Agent restarted during the job";
/** What a KITT server sends as `model_storage_dir` before anyone set it. */
export const SERVER_DEFAULT_STORAGE_DIR = "~/.kitt/models";

const IDLE_HEARTBEAT = {
  successes: 0,
  failures: 0,
  lastSuccessAt: null,
  consecutiveFailures: 0,
} as const;

export interface StartAgentOptions {
  logger?: AgentLogger;
  /** stdout as JSON lines (default) or readable lines (a terminal); ignored with `logger`. */
  logFormat?: LogFormat;
  /** Colour the level of readable lines. */
  logColour?: boolean;
  /** Environment of benchmarks and storage commands (PATH decides what runs). */
  env?: NodeJS.ProcessEnv;
  /** Hardware detection seams (NVML path, host probe). */
  detect?: DetectOptions;
  /** Bounded: a wedged driver must not keep the agent from starting. */
  detectTimeoutMs?: number;
  /** Test seams for the heartbeat loop (sleep, random, backoff...). */
  heartbeat?: Partial<Pick<HeartbeatLoopOptions, "sleep" | "random" | "backoff" | "jitterRatio" | "runningMinIntervalS" | "clock">>;
  /** How long shutdown waits for logs, statuses and results to reach the server. */
  flushTimeoutMs?: number;
  /** Handle SIGTERM/SIGINT (the CLI's `start` does; tests do not). */
  handleSignals?: boolean;
  /** Called once the agent has stopped (after a signal too). */
  onStopped?: () => void;
  /** The container engine (default: Docker at DOCKER_HOST from `env`, else /var/run/docker.sock). */
  containerRuntime?: ContainerRuntime;
  /** Docker's name of the host architecture (default: this machine's), to pass over images of another. */
  hostArch?: string;
  /** Caps of the local API (connections, SSE streams, idle cut); see api-server.ts for the defaults. */
  apiLimits?: ApiLimits;
  /** The V8 flags the process set on itself (the CLI's `start`), named in the start record. */
  v8Flags?: readonly string[];
}

export interface AgentHandle {
  /** The local API's base URL from this host (loopback when it binds every interface). */
  url: string;
  /** The address and port actually bound: `0.0.0.0:8090`, `[::]:8090`, `10.0.0.5:8090`. */
  address: string;
  port: number;
  config: AgentConfig;
  /** Stops taking jobs, cancels the running one, flushes reports, closes everything. Idempotent. */
  stop(reason?: string): Promise<void>;
  /** Stops taking jobs, lets the accepted ones finish, then stops (see Drainer). Idempotent. */
  drain(): { running: number; queued: number };
  /** Resolves when the agent has stopped. */
  done: Promise<void>;
}

/** What `kitt-agent` sets as the process title of a process it owns. */
export const AGENT_PROCESS_TITLE = "kitt-agent";

/** The bound address as `host:port` (IPv6 in brackets), and the URL to dial it from this host. */
export function boundAddress(bound: AddressInfo, tls: boolean): { address: string; url: string } {
  const v6 = bound.family === "IPv6" || bound.address.includes(":");
  const address = v6 ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  const wildcard = bound.address === "0.0.0.0" || bound.address === "::";
  const dial = wildcard ? "127.0.0.1" : v6 ? `[${bound.address}]` : bound.address;
  return { address, url: `${tls ? "https" : "http"}://${dial}:${bound.port}` };
}

async function readOptional(path: string | undefined): Promise<Buffer | undefined> {
  return path === undefined || path === "" ? undefined : readFile(path);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** The engine's socket to hand to KITT containers; none when DOCKER_HOST is not a unix socket (or is malformed). */
function safeSocketPath(env: NodeJS.ProcessEnv): string | undefined {
  try {
    return dockerSocketPath(env);
  } catch {
    return undefined;
  }
}

/** The crash sweep: bounded by the runtime's call timeout; an engine that is not there is not an error. */
async function sweepLeftovers(runtime: ContainerRuntime, agentLabel: string, logger: AgentLogger): Promise<void> {
  try {
    const swept = await sweepContainers(runtime, agentLabel, logger.child({ component: "containers" }));
    if (swept.length > 0) logger.warn(`removed ${swept.length} container(s) left by a previous run`);
  } catch (err) {
    logger.debug(`no container sweep: ${(err as Error).message}`);
  }
}

/**
 * The composition root: detect the hardware, open storage and the report
 * outbox, register (a failure is logged: the heartbeat loop registers
 * later), start the heartbeat loop and the local API, claim the pid file.
 */
export async function startAgent(config: AgentConfig, options: StartAgentOptions = {}): Promise<AgentHandle> {
  // The process is the agent's: ps, top and ss show kitt-agent, not MainThread.
  if (options.handleSignals === true) process.title = AGENT_PROCESS_TITLE;
  // Before anything is written there: created 0700, refused when others can plant files in it.
  checkStateDir(config.state_dir);
  const logger =
    options.logger ??
    createAgentLogger({
      level: config.log_level,
      file: join(config.state_dir, "logs", "agent.log"),
      secrets: [config.token],
      ...(options.logFormat !== undefined ? { format: options.logFormat } : {}),
      ...(options.logColour !== undefined ? { colour: options.logColour } : {}),
    });
  const env = options.env ?? process.env;
  const releasePid = await claimPidFile(join(config.state_dir, "agent.pid"));
  const cleanups: (() => Promise<void> | void)[] = [releasePid];
  const runCleanups = async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        logger.warn(`shutdown step failed: ${(err as Error).message}`);
      }
    }
  };

  try {
    const [ca, cert, key] = await Promise.all([readOptional(config.tls.ca), readOptional(config.tls.cert), readOptional(config.tls.key)]);
    assertTlsPair(config.tls, { cert, key });
    const client = new KittServerClient({
      serverUrl: config.server_url,
      token: config.token,
      insecure: config.insecure,
      tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) },
      logger: logger.child({ component: "client" }),
      userAgent: `kitt-agent/${AGENT_VERSION}`,
    });
    cleanups.push(() => client.close());

    const v8 = options.v8Flags === undefined ? "" : `, V8 flags ${options.v8Flags.length > 0 ? options.v8Flags.join(" ") : "none"}`;
    logger.info(`kitt-agent ${AGENT_VERSION} starting as "${config.name}" for ${config.server_url} (node ${process.version}${v8})`);
    const system = await withTimeout(detectSystem({ ...options.detect, logger }), options.detectTimeoutMs ?? 20_000, "hardware detection").catch(
      (err: Error) => {
        logger.error(`hardware detection failed: ${err.message}; registering without hardware details`);
        return undefined;
      },
    );
    if (system !== undefined) logger.info(`hardware: ${system.fingerprint}`);
    const registration: RegisterRequest = {
      name: config.name,
      hostname: system?.hostname ?? hostname(),
      port: config.port,
      kitt_version: REPORTED_VERSION,
      capabilities: [],
      ...(system !== undefined ? registrationFields(system) : {}),
    };

    const store = await ModelStore.open(
      {
        modelStorageDir: config.model_storage_dir,
        modelShareSource: config.model_share_source,
        modelShareMount: config.model_share_mount,
        autoCleanup: config.auto_cleanup,
      },
      { logger: logger.child({ component: "storage" }), env, copyConcurrency: config.copy_concurrency },
    );
    // Background durability of fresh copies: wait a little at shutdown, then leave the rest (the next start
    // in this boot finishes it; after a reboot an unmarked copy is copied again).
    cleanups.push(() => store.close({ waitMs: 5000 }).then(() => {}));

    let agentId: string | undefined;
    const reporter = await ServerReporter.open({
      stateDir: config.state_dir,
      transport: client,
      agentId: () => agentId,
      logger: logger.child({ component: "reporter" }),
      // Delivery starts once the runner's crash recovery has seen what waits (recoverInterrupted).
      deferDelivery: true,
    });
    cleanups.push(() => reporter.stop());
    // The agent's own records need room; the default model dir shares this disk.
    const diskProblem = await stateDiskProblem(config.state_dir);
    if (diskProblem !== undefined) logger.warn(`${diskProblem}: reports the disk refuses are kept in memory until it has room`);
    const runtime = options.containerRuntime ?? new DockerRuntime({ env });
    cleanups.push(() => runtime.close());
    // Engines whose Docker image is here already (the server shows them per agent).
    const caps = await detectCapabilities(runtime);
    registration.capabilities = caps.capabilities;
    if (caps.error !== undefined) logger.info(`no Docker capabilities: ${caps.error}`);
    else if (caps.capabilities.length > 0) logger.info(`capabilities: ${caps.capabilities.join(", ")}`);
    // The server's kitt_image wins while it is set; an empty one goes back to agent.yaml's.
    let kittImage = config.kitt_image;
    const hostHasGpus = (system?.gpu_count ?? 0) > 0;
    const containerGpus = () => config.docker_gpus === "all" || (config.docker_gpus === "auto" && hostHasGpus);
    let autoCleanup = config.auto_cleanup;
    let lastGpu: GpuSnapshot = { gpus: [] };
    // Native engines the server's Engines page drives; probes cached for the heartbeat.
    const engines = engineCatalog({ stateDir: config.state_dir, env, logger: logger.child({ component: "engines" }) });
    // Metrics are wired before the runner and the loop exist; they read through these.
    const refs: { runner?: JobRunner; heartbeat?: HeartbeatLoop; drainer?: Drainer } = {};
    const metrics = agentMetrics({
      runner: {
        get runningCount() {
          return refs.runner?.runningCount ?? 0;
        },
        get queuedCount() {
          return refs.runner?.queuedCount ?? 0;
        },
      },
      heartbeat: () => refs.heartbeat?.state ?? IDLE_HEARTBEAT,
      gpus: () => lastGpu,
      outbox: () => reporter.outboxState(),
      engines: () => engines.cached(),
    });
    const runner = new JobRunner({
      resolver: storageResolver(store, (bytes) => metrics.stagedBytes(bytes)),
      reporter: metrics.observe(reporter),
      workDir: config.state_dir,
      stateDir: config.state_dir,
      benchmarkCommand: config.benchmark_command,
      planExecution: executionPlanner({
        mode: () => config.execution,
        kittImage: () => kittImage,
        benchmarkCommand: config.benchmark_command,
        env,
        runtime,
        gpus: containerGpus,
        agentLabel: config.name,
        dockerSocket: safeSocketPath(env),
        ...(options.hostArch !== undefined ? { hostArch: options.hostArch } : {}),
        logger: logger.child({ component: "runner" }),
      }),
      containers: { runtime, agentLabel: config.name, gpusAllowed: containerGpus },
      engines: (name) => engines.driver(name),
      env,
      maxQueued: config.max_queued_jobs,
      killGraceMs: config.cancel_grace_s * 1000,
      autoCleanup: () => autoCleanup,
      // The server hands out one command per heartbeat: once idle, ask for the next one now.
      onIdle: () => {
        refs.heartbeat?.nudge();
        refs.drainer?.idle();
      },
      logger: logger.child({ component: "runner" }),
    });

    refs.runner = runner;
    // Containers a dead run of this agent left go first (they may hold the GPU), then their jobs are reported.
    await sweepLeftovers(runtime, config.name, logger);
    // Jobs a crash (SIGKILL, power cut) left unreported are reported failed, once.
    await runner.recoverInterrupted(RESTART_REASON);
    const sampler = new GpuSampler(options.detect?.nvml !== undefined ? { nvml: options.detect.nvml } : {});
    const sampleGpus = async () => {
      try {
        lastGpu = await sampler.snapshot();
      } catch (err) {
        logger.debug(`GPU snapshot failed: ${(err as Error).message}`);
      }
      return lastGpu;
    };



    let accepting = true;
    const apiLimits = resolveApiLimits(options.apiLimits);
    const app = createApiApp({
      maxStreams: apiLimits.maxStreams,
      name: config.name,
      token: config.token,
      jobs: runnerJobsApi(runner, engines),
      engines: () => engines.statusAll(),
      storageUsage: () => store.usage(),
      statusExtras: () => ({
        status: refs.drainer?.draining === true ? "draining" : (refs.heartbeat?.state.statusOverride ?? (runner.runningCount > 0 ? "running" : "idle")),
        version: AGENT_VERSION,
        agent_id: refs.heartbeat?.state.agentId ?? agentId ?? null,
        heartbeat: refs.heartbeat?.state ?? null,
        queued: runner.queuedCount,
        outbox: reporter.outboxState(),
      }),
      metrics: async () => {
        await sampleGpus();
        return metrics.render();
      },
      accepting: () => accepting && refs.drainer?.draining !== true,
      drain: () => refs.drainer?.start(),
      logger: logger.child({ component: "api" }),
    });
    const tlsServer = config.tls.cert !== undefined && config.tls.key !== undefined;
    const server = createApiServer({ app, limits: apiLimits, logger: logger.child({ component: "api" }), ...(tlsServer ? { tls: { cert, key, ca } } : {}) });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.port, config.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    const port = (server.address() as AddressInfo).port;
    const { url, address } = boundAddress(server.address() as AddressInfo, tlsServer);
    logger.info(`local API listening on ${address} (${url} from this host; at most ${apiLimits.maxConnections} connections, ${apiLimits.maxStreams} log streams)`);
    // The server learns the port actually bound (port 0 picks a free one).
    registration.port = port;
    // Register once up front; a failure is not fatal: the loop registers before its first heartbeat.
    try {
      const reg = await client.register(registration, { retries: 1 });
      agentId = reg.agent_id;
      logger.info(`registered as ${reg.agent_id}`);
    } catch (err) {
      logger.warn(`registration failed: ${(err as Error).message}; the heartbeat loop will retry`);
    }
    const heartbeat = new HeartbeatLoop({
      client,
      registration: () => registration,
      status: async () => {
        const gpu = await sampleGpus();
        const usage = await store.usage().catch(() => undefined);
        const running = runner.list().find((j) => j.state === "running");
        const engineList = engines.cached();
        return {
          status: runner.runningCount > 0 ? "running" : "idle",
          current_task: running?.testId ?? "",
          ...(engineList !== undefined ? { engines: engineList } : {}),
          gpus: gpu.gpus,
          ...(gpu.gpu_utilization_pct !== undefined ? { gpu_utilization_pct: gpu.gpu_utilization_pct } : {}),
          ...(gpu.gpu_memory_used_gb !== undefined ? { gpu_memory_used_gb: gpu.gpu_memory_used_gb } : {}),
          ...(usage !== undefined ? { storage_gb_free: usage.free_gb } : {}),
        };
      },
      onCommand: (command) => {
        const result = runner.submit(command);
        if (!result.accepted) logger.warn(`command ${command.command_id ?? "?"} refused: ${result.error}`);
        // The loop waits for this before the next heartbeat: the server's commands are on disk first.
        return result.persisted.catch(() => {});
      },
      onSettings: (settings, problems) => {
        for (const p of problems) logger.warn(`server settings: ${p}`);
        if (settings.auto_cleanup !== undefined) autoCleanup = settings.auto_cleanup;
        const image = settings.kitt_image ?? config.kitt_image;
        if (image !== kittImage) logger.info(`KITT image is now ${image === "" ? "kitt:latest (default)" : image}`);
        kittImage = image;
        // The server sends its default storage dir until an admin changes it; that default
        // must not move models off the disk the operator chose at init (e.g. onto /).
        const storageDir = settings.model_storage_dir === SERVER_DEFAULT_STORAGE_DIR ? undefined : settings.model_storage_dir;
        void store.applyServerSettings({
          ...(storageDir !== undefined ? { modelStorageDir: storageDir } : {}),
          ...(settings.model_share_source !== undefined ? { modelShareSource: settings.model_share_source } : {}),
          ...(settings.model_share_mount !== undefined ? { modelShareMount: settings.model_share_mount } : {}),
          ...(settings.auto_cleanup !== undefined ? { autoCleanup: settings.auto_cleanup } : {}),
        });
      },
      onHealthChange: (health) => {
        // The server is back: deliver what waited in backoff now, not after the longest wait.
        if (health === "ok") reporter.retryNow();
      },
      onAgentId: (id) => {
        agentId = id;
        logger.info(`agent id ${id}`);
      },
      intervalS: config.heartbeat_interval_s,
      ...(agentId !== undefined ? { agentId } : {}),
      stateDir: config.state_dir,
      logger: logger.child({ component: "heartbeat" }),
      ...options.heartbeat,
    });
    refs.heartbeat = heartbeat;
    // Before the first heartbeat: jobs the server dispatched to a run that died before recording them.
    await reportLostDispatches({ client, agentName: config.name, runner, logger: logger.child({ component: "runner" }) });
    await heartbeat.start();
    cleanups.push(() => heartbeat.stop({ abort: true }));

    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    let stopping: Promise<void> | undefined;
    const stop = (reason = SHUTDOWN_REASON): Promise<void> => {
      stopping ??= (async () => {
        accepting = false;
        logger.info(`stopping: ${reason}`);
        // No heartbeat takes commands from here on: one in flight finishes (its commands are refused
        // and reported, never lost), none starts.
        const heartbeatStopped = heartbeat.stop();
        await runner.shutdown(reason);
        await heartbeatStopped;
        const flushed = await reporter.flush(options.flushTimeoutMs ?? 5_000);
        if (!flushed) logger.warn("some reports are still undelivered; they stay on disk for the next start");
        await runCleanups();
        logger.info("stopped");
        logger.flush();
        resolveDone();
        options.onStopped?.();
      })();
      return stopping;
    };

    const drainer = new Drainer({
      stopIntake: () => heartbeat.stop(),
      pending: () => ({ running: runner.runningCount, queued: runner.queuedCount }),
      stop,
      logger,
    });
    refs.drainer = drainer;

    if (options.handleSignals === true) {
      let signalled = false;
      const onSignal = (sig: NodeJS.Signals) => {
        if (signalled) {
          logger.warn(`second ${sig}: killing the running benchmark and exiting now`);
          // Host process groups die synchronously; containers through the engine, given at most 3 s.
          const exit = () => {
            logger.flush();
            process.exit(1);
          };
          setTimeout(exit, 3_000).unref();
          void runner.killAllNow().then(exit, exit);
          return;
        }
        signalled = true;
        void stop(`${SHUTDOWN_REASON} (${sig})`);
      };
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
      cleanups.unshift(() => {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
      });
    }
    return { url, address, port, config, stop, drain: () => drainer.start(), done };
  } catch (err) {
    await runCleanups();
    throw err;
  }
}
