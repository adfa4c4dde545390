/**
 * The agent.yaml schema: every field, its type, bounds, default and env
 * override. The loader (config.ts) walks this table, so a new setting is one
 * entry here.
 */
export type FieldKind = "url" | "string" | "name" | "host" | "path" | "optional-path" | "int" | "bool" | "enum" | "image";

export interface FieldSpec {
  /** Dotted key in agent.yaml (`tls.cert`). */
  key: string;
  kind: FieldKind;
  min?: number;
  max?: number;
  values?: readonly string[];
  /** What a person reads in `kitt-agent init --help` and the README. */
  doc: string;
}

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** Where benchmarks run: `auto` (the KITT image when present, else the host CLI), or one place only. */
export const EXECUTION_MODES = ["auto", "docker", "host"] as const;
/** GPUs handed to containers: `auto` = all when the host has NVIDIA GPUs. */
export const DOCKER_GPU_MODES = ["auto", "all", "none"] as const;

export const CONFIG_FIELDS: readonly FieldSpec[] = [
  { key: "server_url", kind: "url", doc: "KITT server base URL (http or https)" },
  { key: "token", kind: "string", doc: "agent token sent as Bearer to the server and required by the local API" },
  { key: "name", kind: "name", doc: "agent name registered with the server (default: host name)" },
  { key: "host", kind: "host", doc: "address the agent's own API binds: 0.0.0.0 (all interfaces, the default), 127.0.0.1 (this host only), an interface's address or a host name" },
  { key: "port", kind: "int", min: 1, max: 65535, doc: "port of the agent's own API" },
  { key: "model_storage_dir", kind: "path", doc: "local directory for staged models" },
  { key: "model_share_source", kind: "string", doc: "NFS share source, e.g. nas:/volume1/models" },
  { key: "model_share_mount", kind: "optional-path", doc: "where the NFS share is mounted" },
  { key: "auto_cleanup", kind: "bool", doc: "evict a staged model after its benchmark" },
  { key: "heartbeat_interval_s", kind: "int", min: 10, max: 300, doc: "seconds between heartbeats" },
  { key: "insecure", kind: "bool", doc: "skip verification of the server's TLS certificate (development only)" },
  { key: "tls.cert", kind: "optional-path", doc: "client certificate (PEM) for mTLS" },
  { key: "tls.key", kind: "optional-path", doc: "client private key (PEM) for mTLS" },
  { key: "tls.ca", kind: "optional-path", doc: "CA certificate (PEM) that signed the server's certificate" },
  { key: "benchmark_command", kind: "string", doc: "the KITT benchmark CLI to run on the host (`<cmd> run -m ...`)" },
  { key: "execution", kind: "enum", values: EXECUTION_MODES, doc: "where benchmarks run: auto (KITT image, else host CLI), docker, host" },
  { key: "kitt_image", kind: "image", doc: "KITT Docker image to run benchmarks in (default kitt:latest; the server's setting wins when set)" },
  { key: "docker_gpus", kind: "enum", values: DOCKER_GPU_MODES, doc: "GPUs given to containers: auto (all when the host has NVIDIA GPUs), all, none" },
  { key: "cancel_grace_s", kind: "int", min: 0, max: 3600, doc: "seconds between SIGTERM and SIGKILL when a job is cancelled" },
  { key: "max_queued_jobs", kind: "int", min: 0, max: 1000, doc: "jobs that may wait behind the running one" },
  { key: "copy_concurrency", kind: "int", min: 1, max: 64, doc: "files copied at once when staging a model" },
  { key: "state_dir", kind: "path", doc: "where the agent keeps its pid file and job records" },
  { key: "log_level", kind: "enum", values: LOG_LEVELS, doc: "daemon log level" },
];

/** `tls.cert` -> `KITT_AGENT_TLS_CERT`. */
export function envNameFor(key: string): string {
  return `KITT_AGENT_${key.replace(/\./g, "_").toUpperCase()}`;
}
