import type { AgentConfig } from "@kitt/protocol";

import { maskToken } from "./config.js";
import { daemonRequest, DaemonNotRunningError, daemonUrl, errorText } from "./daemon-client.js";
import type { ServiceState } from "./service.js";

export interface AgentStatus {
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
  return {
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

function field(status: Record<string, unknown> | undefined, key: string): unknown {
  return status?.[key];
}

/** The human form. */
export function formatStatus(s: AgentStatus): string {
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
    const job = field(st, "running") === true ? "running a job" : "idle";
    lines.push(`daemon   running on ${s.daemon.url}, ${job}`);
    const storage = field(st, "storage") as { used_gb?: unknown; free_gb?: unknown; model_count?: unknown } | undefined;
    if (storage !== undefined && typeof storage === "object") {
      lines.push(`storage  ${String(storage.model_count ?? "?")} models, ${String(storage.used_gb ?? "?")} GB used, ${String(storage.free_gb ?? "?")} GB free`);
    }
    for (const key of ["current_job", "current_task", "last_heartbeat", "last_heartbeat_at", "agent_id", "version"]) {
      const v = field(st, key);
      if (v !== undefined && v !== null && v !== "") lines.push(`${key.replace(/_/g, " ").padEnd(8)} ${typeof v === "string" ? v : JSON.stringify(v)}`);
    }
  }
  lines.push(
    s.service.installed ? `service  ${s.service.unitPath}: ${s.service.enabled}, ${s.service.active}` : "service  not installed",
  );
  return lines.join("\n");
}
