import {
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
import { dispatchAll } from "./dispatch.js";
import { HealthTracker, isAuthError } from "./health-tracker.js";
import { buildHeartbeatBody } from "./payload.js";
import { StatusReader } from "./status-reader.js";
import type { HeartbeatHealth, HeartbeatLoopOptions, HeartbeatState, SleepFn } from "./types.js";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
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
  private readonly startedAt: number;
  private readonly tracker: HealthTracker;
  private readonly status: StatusReader;

  private store: CommandStore = new MemoryCommandStore();
  private agentId: string | null;
  private agentName: string | null = null;
  private intervalS: number;
  private commandsDispatched = 0;
  private commandsDuplicate = 0;
  private lastAttemptAt: number | null = null;
  private nextDelayMs: number | null = null;
  private lastSettingsKey: string | null = null;
  private lastProblemsKey = "";
  private lastResponseProblemsKey = "";

  private loop: Promise<void> | null = null;
  private stopping = false;
  private wake: AbortController | null = null;
  private inflight: AbortController | null = null;
  private beatRequested = false;
  private nudged = false;
  private readonly nudgeMinGapMs: number;
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
    this.nudgeMinGapMs = options.nudgeMinGapMs ?? 1_000;
    this.status = new StatusReader(options.status, options.statusTimeoutMs ?? 5_000, this.logger);
    this.tracker = new HealthTracker(
      this.logger,
      this.backoff.maxMs,
      () => this.agentName ?? this.agentId ?? "this agent",
      (health) => this.notifyHealth(health),
    );
    this.startedAt = options.startedAt ?? this.now();
    this.agentId = options.agentId !== undefined && options.agentId !== "" ? options.agentId : null;
    this.intervalS = clampInterval(options.intervalS ?? DEFAULT_INTERVAL_S);
    if (!(this.backoff.baseMs > 0 && this.backoff.maxMs >= this.backoff.baseMs)) {
      throw new KittError(`heartbeat backoff needs 0 < baseMs <= maxMs, got ${JSON.stringify(this.backoff)}`, { code: "USAGE" });
    }
    if (!(Number.isFinite(this.nudgeMinGapMs) && this.nudgeMinGapMs >= 0)) {
      throw new KittError(`heartbeat nudgeMinGapMs must be a number >= 0, got ${this.nudgeMinGapMs}`, { code: "USAGE" });
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

  /**
   * The agent became idle (its last job ended, nothing waits): the server may
   * hold more commands, and it hands out one per heartbeat, so the next
   * heartbeat goes now instead of after the interval (or the 60 s floor while
   * a job ran). Never sooner than nudgeMinGapMs after the previous attempt; a
   * nudge during a heartbeat in flight sends one more after it. While the
   * server fails or refuses the token the backoff stands and a nudge does
   * nothing.
   */
  nudge(): void {
    if (this.loop === null || this.stopping) return;
    const health = this.tracker.health;
    if (health === "failing" || health === "unauthorized") return;
    this.nudged = true;
    this.wake?.abort();
  }

  get state(): HeartbeatState {
    const t = this.tracker;
    return {
      agentId: this.agentId,
      health: t.health,
      statusOverride: t.health === "unauthorized" ? "error" : null,
      lastSuccessAt: t.lastSuccessAt,
      lastAttemptAt: this.lastAttemptAt,
      lastError: t.lastError,
      consecutiveFailures: t.consecutiveFailures,
      successes: t.successes,
      failures: t.failures,
      intervalS: this.intervalS,
      nextDelayMs: this.nextDelayMs,
      commandsDispatched: this.commandsDispatched,
      commandsDuplicate: this.commandsDuplicate,
      running: this.loop !== null && !this.stopping,
    };
  }

  /* ---- the loop ---- */

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.beatRequested = false;
      this.nudged = false;
      const waiters = this.beatWaiters.splice(0);
      await this.attempt();
      for (const resolve of waiters) resolve();
      if (this.stopping) break;
      if (this.beatRequested) continue;
      if (!this.nudged) {
        this.nextDelayMs = this.nextDelay();
        await this.pause(this.nextDelayMs);
      }
      // Nudged (before or during the wait): the next beat goes once the least gap since the last attempt has passed.
      if (this.nudged && !this.stopping && !this.beatRequested) {
        const gap = (this.lastAttemptAt ?? 0) + this.nudgeMinGapMs - this.now();
        if (gap > 0) {
          this.nextDelayMs = gap;
          await this.pause(gap);
        }
      }
    }
  }

  /** Sleeps `ms`, cut short by beatNow(), nudge() or stop(). */
  private async pause(ms: number): Promise<void> {
    this.wake = new AbortController();
    try {
      await this.sleep(ms, this.wake.signal);
    } catch {
      // Woken.
    } finally {
      this.wake = null;
    }
  }

  private nextDelay(): number {
    const { health, consecutiveFailures, retryAfterMs } = this.tracker;
    if (health === "unauthorized") return unauthorizedDelayMs(this.backoff, this.jitterRatio, this.random);
    if (health === "failing") {
      const backoff = failureDelayMs(consecutiveFailures, this.backoff, this.random);
      // A server that says when to come back (429/503 Retry-After) is believed, within the cap.
      return retryAfterMs === undefined ? backoff : Math.min(this.backoff.maxMs, Math.max(backoff, retryAfterMs));
    }
    return intervalDelayMs(this.intervalS, {
      // A job handed over by the last response is about to run: the status read before it says idle.
      running: this.status.running || this.jobJustDispatched,
      runningMinS: this.runningMinS,
      jitterRatio: this.jitterRatio,
      random: this.random,
    });
  }

  private jobJustDispatched = false;

  /** One heartbeat, registration included when needed. Never throws. */
  private async attempt(): Promise<void> {
    const attemptAt = this.now();
    this.lastAttemptAt = attemptAt;
    const inflight = new AbortController();
    this.inflight = inflight;
    let response: HeartbeatResponse;
    try {
      const snapshot = await this.status.read();
      const body = buildHeartbeatBody(snapshot, (this.now() - this.startedAt) / 1000);
      response = await this.send(body, inflight.signal);
    } catch (err) {
      if (!(this.stopping && isAborted(err))) this.tracker.failed(err, attemptAt);
      return;
    } finally {
      this.inflight = null;
    }
    this.tracker.succeeded(this.now());
    this.jobJustDispatched = response.commands.some((c) => c.kind === "run_test");
    // The server has handed the commands out by now: they are handled even
    // while stopping, and a fault here is ours, not a failed heartbeat.
    try {
      await this.handle(response);
    } catch (err) {
      this.logger.error(`handling the heartbeat response failed: ${message(err)}`);
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

  private notifyHealth(health: HeartbeatHealth): void {
    try {
      this.opts.onHealthChange?.(health, this.state);
    } catch (err) {
      this.logger.error(`onHealthChange callback failed: ${message(err)}`);
    }
  }

  private async handle(response: HeartbeatResponse): Promise<void> {
    this.warnResponseProblems(response.problems);
    if (response.agent_id !== undefined && response.agent_id !== this.agentId) {
      if (this.agentId !== null) this.logger.info(`the KITT server calls this agent ${response.agent_id} (was ${this.agentId}); adopting it`);
      this.adoptId(response.agent_id);
    }
    this.applySettings(response);
    const { dispatched, duplicates } = await dispatchAll(response.commands, this.store, this.opts.onCommand, this.logger);
    this.commandsDispatched += dispatched;
    this.commandsDuplicate += duplicates;
  }

  /** One warning per odd field of the response, again only when the set of them changes. */
  private warnResponseProblems(problems: readonly string[]): void {
    const key = problems.join("\n");
    if (key !== this.lastResponseProblemsKey) for (const problem of problems) this.logger.warn(`heartbeat response: ${problem}`);
    this.lastResponseProblemsKey = key;
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
