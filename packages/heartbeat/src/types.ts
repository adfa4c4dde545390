import type {
  AgentSettings,
  AgentStatus,
  BackoffPolicy,
  EngineStatus,
  GpuTelemetry,
  HeartbeatRequest,
  HeartbeatResponse,
  Logger,
  RegisterRequest,
  RegisterResponse,
  ServerCommand,
} from "@kitt/protocol";

import type { CommandStore } from "./command-store.js";

/**
 * What the daemon knows about itself at the moment of a heartbeat. The loop
 * adds `uptime_s` and sends only the fields the protocol knows, dropping
 * values that are not finite numbers rather than failing the heartbeat.
 */
export interface StatusSnapshot {
  status: AgentStatus;
  current_task?: string;
  /** GPU 0's utilization, as the server's single-GPU fields expect. */
  gpu_utilization_pct?: number;
  gpu_memory_used_gb?: number;
  /** Every GPU: an extra field the server ignores but humans read. */
  gpus?: GpuTelemetry[];
  storage_gb_free?: number;
  engines?: EngineStatus[];
}

/** The subset of the server client the loop uses (KittServerClient fits). */
export interface HeartbeatClient {
  register(body: RegisterRequest, opts?: { retries?: number; signal?: AbortSignal; timeoutMs?: number }): Promise<RegisterResponse>;
  heartbeat(
    agentId: string,
    body: HeartbeatRequest,
    opts?: { retries?: number; signal?: AbortSignal; timeoutMs?: number },
  ): Promise<HeartbeatResponse>;
}

/** Sleeps `ms`, or rejects once `signal` aborts (protocol's `sleep` fits). */
export type SleepFn = (ms: number, signal?: AbortSignal) => Promise<void>;

/**
 * How the server connection looks from here:
 * - `starting`: no attempt finished yet;
 * - `ok`: the last heartbeat was acknowledged;
 * - `failing`: unreachable, 5xx, or an answer we could not use; backing off;
 * - `unauthorized`: 401/403, the token is not accepted; the agent reports `error`.
 */
export type HeartbeatHealth = "starting" | "ok" | "failing" | "unauthorized";

/** A read-only picture of the loop for `/api/status` and `/metrics`. */
export interface HeartbeatState {
  /** The id used in heartbeat URLs; null until registration (or a response) gave one. */
  agentId: string | null;
  health: HeartbeatHealth;
  /**
   * `error` while the token is refused, otherwise null (the daemon's own
   * status applies). For the daemon's /api/status; heartbeats themselves
   * carry the status provider's value, since a refused one is never stored.
   */
  statusOverride: AgentStatus | null;
  /** Epoch ms (from the injected clock) of the last acknowledged heartbeat. */
  lastSuccessAt: number | null;
  lastAttemptAt: number | null;
  /** One line describing the last failure; null after a success. */
  lastError: string | null;
  consecutiveFailures: number;
  successes: number;
  failures: number;
  /** The base interval now in effect (register response, then settings), seconds. */
  intervalS: number;
  /** The wait chosen after the last attempt (jitter and backoff included), ms. */
  nextDelayMs: number | null;
  commandsDispatched: number;
  /** Commands received again after they had been dispatched, and ignored. */
  commandsDuplicate: number;
  running: boolean;
}

/** The dispatcher may be sync or async; either way it owns reporting the command's fate. */
export type CommandHandler = (command: ServerCommand) => void | Promise<void>;
export type SettingsHandler = (settings: AgentSettings, problems: string[]) => void | Promise<void>;

export interface HeartbeatLoopOptions {
  client: HeartbeatClient;
  /** Builds the register body (hardware detection lives in the daemon). Its `name` is also the fallback id. */
  registration: () => RegisterRequest | Promise<RegisterRequest>;
  /** Current status, GPU and storage figures. A throw or a hang is tolerated (see statusTimeoutMs). */
  status: () => StatusSnapshot | Promise<StatusSnapshot>;
  /** Each command exactly once; a throw is logged and the command still counts as accepted. */
  onCommand: CommandHandler;
  /** Called with the normalised settings whenever they differ from the last ones delivered. */
  onSettings?: SettingsHandler;
  /** Told when health changes (e.g. to flip the daemon's status to error). */
  onHealthChange?: (health: HeartbeatHealth, state: HeartbeatState) => void;
  /** Told when the agent id changes (registration, 404 re-registration, or the server's canonical id). */
  onAgentId?: (agentId: string) => void;

  /** Id from a registration the daemon already did; otherwise the loop registers first. */
  agentId?: string;
  /** Register response interval, when the daemon registered itself. Default 30 s. */
  intervalS?: number;
  /** Directory for the command-id ledger (`heartbeat-commands.json`). */
  stateDir?: string;
  /** A ledger of your own; overrides stateDir. Default: in memory only. */
  commandStore?: CommandStore;

  logger?: Logger;
  clock?: { now(): number };
  sleep?: SleepFn;
  random?: () => number;

  /** Failure backoff; default 2 s doubling up to 5 min. */
  backoff?: BackoffPolicy;
  /** Fraction of the interval added at random to every wait; default 0.1. */
  jitterRatio?: number;
  /** Floor of the interval while a job runs; default 60 s. */
  runningMinIntervalS?: number;
  /** Least time between two heartbeats that nudge() brings forward; default 1 s. */
  nudgeMinGapMs?: number;
  /** Per-request timeout for register and heartbeat; default 15 s. */
  requestTimeoutMs?: number;
  /** How long the status provider may take before a heartbeat goes without its figures; default 5 s. */
  statusTimeoutMs?: number;
  /** Epoch ms the agent started at, for `uptime_s`; default: when the loop was created. */
  startedAt?: number;
}
