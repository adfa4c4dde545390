import {
  type AgentStatus,
  type BackoffPolicy,
  clampInterval,
  type HeartbeatRequest,
  type HeartbeatResponse,
  KittError,
  type Logger,
  ServerError,
  silentLogger,
  sleep as defaultSleep,
} from "@kitt/protocol";

import {
  DEFAULT_BACKOFF,
  DEFAULT_INTERVAL_S,
  DEFAULT_JITTER_RATIO,
  DEFAULT_RUNNING_MIN_INTERVAL_S,
  failureDelayMs,
  intervalDelayMs,
  unauthorizedDelayMs,
} from "./cadence.js";
import { type CommandStore, FileCommandStore, MemoryCommandStore } from "./command-store.js";
import { dispatchOnce } from "./dispatch.js";
import { buildHeartbeatBody } from "./payload.js";
import type { HeartbeatHealth, HeartbeatLoopOptions, HeartbeatState, SleepFn, StatusSnapshot } from "./types.js";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isAuthError(err: unknown): err is ServerError {
  return err instanceof ServerError && (err.status === 401 || err.status === 403);
}

function isAborted(err: unknown): boolean {
  return err instanceof KittError && err.code === "ABORTED";
}

/**
 * Keeps the agent known to the KITT server: registers when it has no id,
 * sends a heartbeat right away and then every interval (jittered, at least
 * 60 s while a job runs), backs off while the server is unreachable, and
 * hands each command in a response to the dispatcher exactly once.
 *
 *   const loop = new HeartbeatLoop({ client, registration, status, onCommand, stateDir });
 *   await loop.start();
 *   ...
 *   await loop.stop();
 */
export class HeartbeatLoop {
  private readonly opts: HeartbeatLoopOptions;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly sleep: SleepFn;
  private readonly random: () => number;
  private readonly backoff: BackoffPolicy;
  private readonly jitterRatio: number;
  private readonly runningMinS: number;
  private readonly requestTimeoutMs: number;
  private readonly statusTimeoutMs: number;
  private readonly startedAt: number;

  private store: CommandStore = new MemoryCommandStore();
  private agentId: string | null;
  private agentName: string | null = null;
  private intervalS: number;
  private health: HeartbeatHealth = "starting";
  private counters = { successes: 0, failures: 0, consecutiveFailures: 0, dispatched: 0, duplicates: 0 };
  private lastSuccessAt: number | null = null;
  private lastAttemptAt: number | null = null;
  private lastError: string | null = null;
  private failingSince: number | null = null;
  private nextDelayMs: number | null = null;
  private lastSnapshot: Pick<StatusSnapshot, "status" | "current_task"> | null = null;
  private statusProviderFailing = false;
  private lastSettingsKey: string | null = null;
  private lastProblemsKey = "";

  private loop: Promise<void> | null = null;
  private stopping = false;
  private wake: AbortController | null = null;
  private inflight: AbortController | null = null;
  private beatRequested = false;
  private beatWaiters: Array<() => void> = [];

  constructor(options: HeartbeatLoopOptions) {
    this.opts = options;
    this.logger = options.logger ?? silentLogger;
    const clock = options.clock ?? { now: () => Date.now() };
    this.now = () => clock.now();
    this.sleep = options.sleep ?? defaultSleep;
    this.random = options.random ?? Math.random;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.jitterRatio = options.jitterRatio ?? DEFAULT_JITTER_RATIO;
    this.runningMinS = options.runningMinIntervalS ?? DEFAULT_RUNNING_MIN_INTERVAL_S;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.statusTimeoutMs = options.statusTimeoutMs ?? 5_000;
    this.startedAt = options.startedAt ?? this.now();
    this.agentId = options.agentId !== undefined && options.agentId !== "" ? options.agentId : null;
    this.intervalS = clampInterval(options.intervalS ?? DEFAULT_INTERVAL_S);
    if (!(this.backoff.baseMs > 0 && this.backoff.maxMs >= this.backoff.baseMs)) {
      throw new KittError(`heartbeat backoff needs 0 < baseMs <= maxMs, got ${JSON.stringify(this.backoff)}`, { code: "USAGE" });
    }
    if (!(this.jitterRatio >= 0 && this.jitterRatio <= 1)) {
      throw new KittError(`heartbeat jitterRatio must be within 0..1, got ${this.jitterRatio}`, { code: "USAGE" });
    }
  }

  /**
   * Opens the command ledger and starts beating; the first heartbeat goes out
   * at once. Resolves without waiting for it. A ledger that cannot be opened
   * is logged and replaced by one in memory: heartbeats matter more.
   */
  async start(): Promise<void> {
    if (this.loop !== null) throw new KittError("heartbeat loop already started", { code: "USAGE" });
    this.loop = Promise.resolve(); // claims the slot while the ledger opens
    if (this.opts.commandStore !== undefined) {
      this.store = this.opts.commandStore;
    } else if (this.opts.stateDir !== undefined) {
      try {
        this.store = await FileCommandStore.openIn(this.opts.stateDir, { logger: this.logger });
      } catch (err) {
        this.logger.error(`${message(err)}; remembering dispatched commands in memory only`);
      }
    }
    this.loop = this.run();
  }

  /**
   * Stops the loop and resolves once it is idle (no timer, no request). An
   * in-flight heartbeat is allowed to finish (bounded by requestTimeoutMs) so
   * that a command the server already handed out is not lost; `abort: true`
   * cancels it instead.
   */
  async stop(options: { abort?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.wake?.abort();
    if (options.abort === true) this.inflight?.abort();
    await this.loop;
    for (const resolve of this.beatWaiters.splice(0)) resolve();
  }

  /**
   * Sends a heartbeat now (e.g. right after a job ended) instead of at the
   * end of the current wait, backoff included. Resolves once that heartbeat
   * finished, successful or not (or the loop stopped).
   */
  beatNow(): Promise<void> {
    if (this.loop === null || this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      this.beatWaiters.push(resolve);
      this.beatRequested = true;
      this.wake?.abort();
    });
  }

  get state(): HeartbeatState {
    return {
      agentId: this.agentId,
      health: this.health,
      statusOverride: this.statusOverride(),
      lastSuccessAt: this.lastSuccessAt,
      lastAttemptAt: this.lastAttemptAt,
      lastError: this.lastError,
      consecutiveFailures: this.counters.consecutiveFailures,
      successes: this.counters.successes,
      failures: this.counters.failures,
      intervalS: this.intervalS,
      nextDelayMs: this.nextDelayMs,
      commandsDispatched: this.counters.dispatched,
      commandsDuplicate: this.counters.duplicates,
      running: this.loop !== null && !this.stopping,
    };
  }

  /* ---- the loop ---- */

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.beatRequested = false;
      const waiters = this.beatWaiters.splice(0);
      await this.attempt();
      for (const resolve of waiters) resolve();
      if (this.stopping) break;
      if (this.beatRequested) continue;
      this.nextDelayMs = this.nextDelay();
      this.wake = new AbortController();
      try {
        await this.sleep(this.nextDelayMs, this.wake.signal);
      } catch {
        // Woken by beatNow() or stop().
      } finally {
        this.wake = null;
      }
    }
  }

  private nextDelay(): number {
    if (this.health === "unauthorized") return unauthorizedDelayMs(this.backoff, this.jitterRatio, this.random);
    if (this.health === "failing") return failureDelayMs(this.counters.consecutiveFailures, this.backoff, this.random);
    return intervalDelayMs(this.intervalS, {
      running: this.lastSnapshot?.status === "running",
      runningMinS: this.runningMinS,
      jitterRatio: this.jitterRatio,
      random: this.random,
    });
  }

  /** One heartbeat, registration included when needed. Never throws. */
  private async attempt(): Promise<void> {
    this.lastAttemptAt = this.now();
    const inflight = new AbortController();
    this.inflight = inflight;
    try {
      const snapshot = await this.snapshot();
      const body = buildHeartbeatBody(snapshot, (this.now() - this.startedAt) / 1000);
      const response = await this.send(body, inflight.signal);
      this.succeeded();
      await this.handle(response);
    } catch (err) {
      if (this.stopping && isAborted(err)) return;
      this.failed(err);
    } finally {
      this.inflight = null;
    }
  }

  private async send(body: HeartbeatRequest, signal: AbortSignal): Promise<HeartbeatResponse> {
    if (this.agentId === null) {
      try {
        await this.register(signal);
      } catch (err) {
        if (isAuthError(err) || !(err instanceof ServerError)) throw err;
        // The server may know us by name already (an earlier run registered):
        // it resolves names in heartbeat URLs, so go on with the name.
        this.logger.debug(`registration failed (${message(err)}); heartbeating with the agent name`);
      }
    }
    const id = this.agentId ?? (await this.name());
    try {
      return await this.heartbeat(id, body, signal);
    } catch (err) {
      if (!(err instanceof ServerError && err.status === 404)) throw err;
      // The server lost us (database reset, agent deleted): register once and retry once.
      this.logger.warn(`the KITT server does not know agent ${id}; registering again`);
      await this.register(signal);
      return await this.heartbeat(this.agentId ?? id, body, signal);
    }
  }

  private heartbeat(id: string, body: HeartbeatRequest, signal: AbortSignal): Promise<HeartbeatResponse> {
    return this.opts.client.heartbeat(id, body, { retries: 0, signal, timeoutMs: this.requestTimeoutMs });
  }

  private async register(signal: AbortSignal): Promise<void> {
    const request = await this.opts.registration();
    this.agentName = request.name;
    const response = await this.opts.client.register(request, { retries: 0, signal, timeoutMs: this.requestTimeoutMs });
    if (response.heartbeat_interval_s !== undefined) this.intervalS = clampInterval(response.heartbeat_interval_s);
    this.logger.info(`registered with the KITT server as ${request.name} (agent id ${response.agent_id})`);
    this.adoptId(response.agent_id);
  }

  private async name(): Promise<string> {
    if (this.agentName === null) this.agentName = (await this.opts.registration()).name;
    return this.agentName;
  }

  private adoptId(id: string): void {
    if (id === this.agentId) return;
    this.agentId = id;
    try {
      this.opts.onAgentId?.(id);
    } catch (err) {
      this.logger.error(`onAgentId callback failed: ${message(err)}`);
    }
  }

  /**
   * The daemon's status figures, bounded in time: a hung GPU query must not
   * stop the heartbeat, so after statusTimeoutMs the heartbeat goes out with
   * the last known status and no figures. Logged once per streak.
   */
  private async snapshot(): Promise<Partial<StatusSnapshot>> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.statusTimeoutMs} ms`)), this.statusTimeoutMs);
    });
    try {
      const snapshot = await Promise.race([Promise.resolve().then(() => this.opts.status()), timeout]);
      if (this.statusProviderFailing) this.logger.info("status figures are available again");
      this.statusProviderFailing = false;
      this.lastSnapshot = { status: snapshot.status, current_task: snapshot.current_task ?? "" };
      return snapshot;
    } catch (err) {
      if (!this.statusProviderFailing) this.logger.warn(`status provider failed (${message(err)}); heartbeats go out without figures`);
      this.statusProviderFailing = true;
      return this.lastSnapshot ?? { status: "idle" };
    } finally {
      clearTimeout(timer);
    }
  }

  /* ---- outcomes ---- */

  private statusOverride(): AgentStatus | null {
    return this.health === "unauthorized" ? "error" : null;
  }

  private setHealth(health: HeartbeatHealth): void {
    if (health === this.health) return;
    this.health = health;
    try {
      this.opts.onHealthChange?.(health, this.state);
    } catch (err) {
      this.logger.error(`onHealthChange callback failed: ${message(err)}`);
    }
  }

  private succeeded(): void {
    const now = this.now();
    if (this.health === "failing" || this.health === "unauthorized") {
      const since = this.failingSince ?? now;
      this.logger.info(
        `heartbeat recovered after ${this.counters.consecutiveFailures} failed attempt(s) over ${Math.round((now - since) / 1000)} s`,
      );
    }
    this.counters.successes++;
    this.counters.consecutiveFailures = 0;
    this.lastSuccessAt = now;
    this.lastError = null;
    this.failingSince = null;
    this.setHealth("ok");
  }

  /** One log line per change of trouble, not one per attempt. */
  private failed(err: unknown): void {
    const text = message(err);
    this.counters.failures++;
    this.counters.consecutiveFailures++;
    this.lastError = text;
    this.failingSince ??= this.lastAttemptAt ?? this.now();
    const next: HeartbeatHealth = isAuthError(err) ? "unauthorized" : "failing";
    if (next === this.health) {
      this.logger.debug(`heartbeat attempt ${this.counters.consecutiveFailures} failed: ${text}`);
      return;
    }
    if (next === "unauthorized") {
      const who = this.agentName ?? this.agentId ?? "this agent";
      this.logger.error(
        `heartbeat rejected: ${text}. The KITT server does not accept this agent's token for ${who}; ` +
          `fix "token" in agent.yaml (or the server's agent record). Agent status is now "error"; ` +
          `retrying every ${Math.round(this.backoff.maxMs / 1000)} s`,
      );
    } else {
      this.logger.warn(`heartbeat failing: ${text}; retrying with backoff up to ${Math.round(this.backoff.maxMs / 1000)} s`);
    }
    this.setHealth(next);
  }

  private async handle(response: HeartbeatResponse): Promise<void> {
    if (response.agent_id !== undefined && response.agent_id !== this.agentId) {
      if (this.agentId !== null) this.logger.info(`the KITT server calls this agent ${response.agent_id} (was ${this.agentId}); adopting it`);
      this.adoptId(response.agent_id);
    }
    this.applySettings(response);
    for (const command of response.commands) {
      const outcome = await dispatchOnce(command, this.store, this.opts.onCommand, this.logger);
      if (outcome === "dispatched") this.counters.dispatched++;
      else this.counters.duplicates++;
    }
  }

  private applySettings(response: HeartbeatResponse): void {
    const { settings, settingsProblems } = response;
    const problemsKey = settingsProblems.join("\n");
    if (problemsKey !== this.lastProblemsKey && problemsKey !== "") {
      this.logger.warn(`server settings partly ignored: ${settingsProblems.join("; ")}`);
    }
    this.lastProblemsKey = problemsKey;
    if (settings.heartbeat_interval_s !== undefined) this.intervalS = clampInterval(settings.heartbeat_interval_s);
    const key = JSON.stringify(settings);
    if (key === this.lastSettingsKey) return;
    this.lastSettingsKey = key;
    const onError = (err: unknown) => this.logger.error(`applying server settings failed: ${message(err)}`);
    try {
      const result = this.opts.onSettings?.({ ...settings }, [...settingsProblems]);
      if (result !== undefined && typeof (result as Promise<void>).then === "function") (result as Promise<void>).then(undefined, onError);
    } catch (err) {
      onError(err);
    }
  }
}
