import type { AgentConfig } from "@kitt/protocol";

import { maskToken } from "./config.js";
import { daemonUrl } from "./daemon-address.js";
import { portListening } from "./port-listening.js";
import type { ServiceState } from "./service-files.js";

/**
 * What `status` concludes, and its exit code: running 0 (the daemon serves,
 * heartbeats are accepted), error 1 (it answers but something is wrong:
 * token rejected, heartbeats failing, a bad answer), not-running 3 (nothing
 * answers), not-configured 3 (no agent.yaml; 2 when it exists but is invalid).
 */
export type AgentState = "running" | "error" | "not-running" | "not-configured";

export interface AgentStatus {
  configured: true;
  state: AgentState;
  /** Why the state is error: one line. */
  problem?: string;
  config: {
    path: string;
    server_url: string;
    name: string;
    port: number;
    token: string;
    model_storage_dir: string;
    tls: boolean;
  };
  daemon: { url: string; running: boolean; status?: Record<string, unknown>; error?: string };
  service: ServiceState;
}

/** The config (token masked), what the daemon says on /api/status, and the systemd unit's state. */
export async function agentStatus(
  loaded: { config: AgentConfig; path: string },
  service: () => Promise<ServiceState>,
  options: { timeoutMs?: number } = {},
): Promise<AgentStatus> {
  const { config } = loaded;
  const url = daemonUrl(config);
  const daemonProbe = (async (): Promise<AgentStatus["daemon"]> => {
    // Nothing listens on the port: not running, known without loading an HTTP client.
    if (portListening(config.port) === false) return { url, running: false };
    const { daemonRequest, DaemonNotRunningError, errorText } = await import("./daemon-client.js");
    try {
      const res = await daemonRequest(config, "GET", "/api/status", { timeoutMs: options.timeoutMs ?? 3000 });
      if (res.status === 200 && res.body !== null && typeof res.body === "object") {
        return { url, running: true, status: res.body as Record<string, unknown> };
      }
      return { url, running: true, error: `HTTP ${res.status}: ${errorText(res.body)}` };
    } catch (err) {
      if (err instanceof DaemonNotRunningError) return { url, running: false };
      return { url, running: false, error: (err as Error).message };
    }
  })();
  const [daemon, svc] = await Promise.all([daemonProbe, service()]);
  const { state, problem } = verdict(daemon);
  return {
    configured: true,
    state,
    ...(problem === undefined ? {} : { problem }),
    config: {
      path: loaded.path,
      server_url: config.server_url,
      name: config.name,
      port: config.port,
      token: maskToken(config.token),
      model_storage_dir: config.model_storage_dir,
      tls: config.tls.cert !== undefined,
    },
    daemon,
    service: svc,
  };
}

/** No agent.yaml (or one that cannot be read): still one document, with the reason. */
export interface UnconfiguredStatus {
  configured: false;
  state: "not-configured";
  problem: string;
  config: { path: string };
  daemon: { running: false };
  service: ServiceState;
}

export type StatusReport = AgentStatus | UnconfiguredStatus;

const EXIT_OF: Record<AgentState, number> = { running: 0, error: 1, "not-running": 3, "not-configured": 3 };

/** The config's error when it is missing or invalid, the status otherwise; with warnings and the exit code. */
export async function statusReport(
  configPath: string | undefined,
  service: () => Promise<ServiceState>,
  options: { timeoutMs?: number } = {},
): Promise<{ report: StatusReport; warnings: string[]; exitCode: number }> {
  const { loadAgentConfig, resolveConfigPath } = await import("@kitt/protocol/config");
  let loaded: { config: AgentConfig; path: string; warnings: string[] };
  try {
    loaded = await loadAgentConfig({ ...(configPath === undefined ? {} : { path: configPath }), requireServer: true });
  } catch (err) {
    const e = err as Error & { code?: string; file?: string; cause?: { code?: string } };
    if (e.code !== "CONFIG") throw err;
    const path = e.file ?? resolveConfigPath(configPath);
    const problem = e.message.startsWith(`${path}: `) ? e.message.slice(path.length + 2) : e.message;
    const report: UnconfiguredStatus = { configured: false, state: "not-configured", problem, config: { path }, daemon: { running: false }, service: await service() };
    // A file that is there but invalid is the user's to fix (2); no file at all: nothing runs (3).
    return { report, warnings: [], exitCode: e.cause?.code === "ENOENT" ? EXIT_OF["not-configured"] : 2 };
  }
  const report = await agentStatus(loaded, service, options);
  return { report, warnings: loaded.warnings, exitCode: EXIT_OF[report.state] };
}

/** running, error or not-running from what the daemon answered (and its heartbeat's health). */
function verdict(daemon: AgentStatus["daemon"]): { state: AgentState; problem?: string } {
  if (!daemon.running) {
    return daemon.error === undefined ? { state: "not-running" } : { state: "error", problem: `the daemon does not answer properly on ${daemon.url}: ${daemon.error}` };
  }
  if (daemon.status === undefined) return { state: "error", problem: `the daemon answers on ${daemon.url} but: ${daemon.error ?? "no status"}` };
  const hb = record(field(daemon.status, "heartbeat"));
  const lastError = text(hb?.lastError);
  const why = lastError === undefined ? "" : ` (${lastError})`;
  if (hb?.health === "unauthorized") return { state: "error", problem: `the server rejects the agent's token${why}: check token in agent.yaml` };
  if (hb?.health === "failing") return { state: "error", problem: `heartbeats are failing${why}` };
  if (text(field(daemon.status, "status")) === "error") return { state: "error", problem: "the daemon reports status error" };
  return { state: "running" };
}

function field(status: Record<string, unknown> | undefined, key: string): unknown {
  return status?.[key];
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** `42 s ago`, `5 min ago`, `3 h ago`: how long since an epoch-ms instant. */
export function ago(thenMs: number, nowMs: number): string {
  const s = Math.max(0, Math.round((nowMs - thenMs) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 2 * 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

const STATE_WORDS: Record<string, string> = { idle: "idle", running: "running a job", error: "in error", draining: "draining (no new jobs; stops when the accepted ones end)" };

/** The daemon's own summary word: the top-level `status`, else derived from `running`. */
function stateWord(st: Record<string, unknown>): string {
  const status = text(field(st, "status"));
  if (status !== undefined) return STATE_WORDS[status] ?? status;
  return field(st, "running") === true ? "running a job" : "idle";
}

/** `job` lines for the running jobs: test id, command id, since when. */
function jobLines(st: Record<string, unknown>, nowMs: number): string[] {
  const jobs = record(field(st, "jobs"));
  const running = Array.isArray(jobs?.running) ? jobs.running : [];
  return running.map((j) => {
    const job = record(j) ?? {};
    const since = text(job.started_at) ?? text(job.created_at);
    const sinceMs = since === undefined ? Number.NaN : Date.parse(since);
    const when = since === undefined ? "" : `, since ${since}${Number.isNaN(sinceMs) ? "" : ` (${ago(sinceMs, nowMs)})`}`;
    return `job      test ${text(job.test_id) ?? "?"} (command ${text(job.command_id) ?? "?"}, ${text(job.state) ?? "running"}${when})`;
  });
}

function queuedCount(st: Record<string, unknown>): number | undefined {
  const queued = field(st, "queued");
  if (typeof queued === "number") return queued;
  const list = record(field(st, "jobs"))?.queued;
  return Array.isArray(list) ? list.length : undefined;
}

/** Heartbeat health, the age of the last acknowledged heartbeat, and the last error while it fails. */
function heartbeatLines(st: Record<string, unknown>, nowMs: number): string[] {
  const hb = record(field(st, "heartbeat"));
  if (hb === undefined) return [];
  const health = text(hb.health) ?? "unknown";
  const last = typeof hb.lastSuccessAt === "number" ? `last success ${ago(hb.lastSuccessAt, nowMs)}` : "none acknowledged yet";
  const failures = typeof hb.consecutiveFailures === "number" && hb.consecutiveFailures > 0 ? `, ${hb.consecutiveFailures} failed in a row` : "";
  const lines = [`heartbeat ${health}, ${last}${failures}`];
  const error = text(hb.lastError);
  if (error !== undefined && health !== "ok") lines.push(`  last error: ${error}`);
  return lines;
}

function serviceLine(service: ServiceState): string {
  return service.installed ? `service  ${service.unitPath}: ${service.enabled}, ${service.active}` : "service  not installed";
}

/** The human form. */
export function formatStatus(s: StatusReport, nowMs: number = Date.now()): string {
  if (!s.configured) {
    return [`config   ${s.config.path}: ${s.problem}`, "daemon   not running (no configuration)", serviceLine(s.service)].join("\n");
  }
  const lines = [
    `config   ${s.config.path}`,
    `server   ${s.config.server_url}${s.config.tls ? " (mTLS)" : ""}`,
    `agent    ${s.config.name} (port ${s.config.port}, token ${s.config.token})`,
    `models   ${s.config.model_storage_dir}`,
  ];
  if (!s.daemon.running) {
    lines.push(`daemon   not running (nothing answers on ${s.daemon.url})${s.daemon.error ? `: ${s.daemon.error}` : ""}`);
  } else if (s.daemon.status === undefined) {
    lines.push(`daemon   answers on ${s.daemon.url} but: ${s.daemon.error ?? "no status"}`);
  } else {
    const st = s.daemon.status;
    lines.push(`daemon   running on ${s.daemon.url}, ${stateWord(st)}`);
    lines.push(...jobLines(st, nowMs));
    const queued = queuedCount(st);
    if (queued !== undefined) lines.push(`queued   ${queued} job${queued === 1 ? "" : "s"}`);
    lines.push(...heartbeatLines(st, nowMs));
    const storage = record(field(st, "storage"));
    if (storage !== undefined) {
      lines.push(`storage  ${String(storage.model_count ?? "?")} models, ${String(storage.used_gb ?? "?")} GiB used, ${String(storage.free_gb ?? "?")} GiB free`);
    }
    const agentId = text(field(st, "agent_id"));
    if (agentId !== undefined) lines.push(`agent id ${agentId}`);
    const version = text(field(st, "version"));
    if (version !== undefined) lines.push(`version  ${version}`);
  }
  lines.push(serviceLine(s.service));
  if (s.problem !== undefined) lines.push(`problem  ${s.problem}`);
  return lines.join("\n");
}
