/**
 * Wire types of the KITT protocol (kitt-protocol.md), both directions, plus
 * the bodies of the agent's own HTTP API. Field names are the wire's
 * (snake_case) so that a value can be sent as is.
 */

export const KNOWN_ENGINES = ["vllm", "llama_cpp", "ollama", "exllamav2", "mlx"] as const;
export type EngineName = (typeof KNOWN_ENGINES)[number];

export const KNOWN_SUITES = ["quick", "standard", "performance"] as const;
export type SuiteName = (typeof KNOWN_SUITES)[number];

export const AGENT_STATUSES = ["idle", "running", "error"] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

export const ENVIRONMENT_TYPES = [
  "dgx_spark",
  "dgx",
  "wsl2",
  "docker",
  "container",
  "native_linux",
  "native_macos",
  "native_windows",
  "unknown",
] as const;
export type EnvironmentType = (typeof ENVIRONMENT_TYPES)[number];

/** `POST /api/v1/agents/register` body. */
export interface RegisterRequest {
  name: string;
  hostname: string;
  port?: number;
  gpu_info?: string;
  gpu_count?: number;
  cpu_info?: string;
  cpu_arch?: string;
  ram_gb?: number;
  environment_type?: EnvironmentType;
  fingerprint?: string;
  kitt_version?: string;
  capabilities?: string[];
  /** A JSON *string*, not an object: the server stores it as text. */
  hardware_details?: string;
}

export interface RegisterResponse {
  agent_id: string;
  /** Seconds; absent when the server did not say. */
  heartbeat_interval_s?: number;
}

export interface EngineStatus {
  engine: string;
  installed: boolean;
  running: boolean;
  version?: string;
  binary_path?: string;
}

/** Per-GPU telemetry: an extra heartbeat field the server ignores but humans want. */
export interface GpuTelemetry {
  index: number;
  name: string;
  uuid: string;
  utilization_pct?: number;
  memory_used_gb?: number;
  memory_total_gb?: number;
  temperature_c?: number;
  power_w?: number;
}

/** `POST /api/v1/agents/<id>/heartbeat` body; every field is optional on the wire. */
export interface HeartbeatRequest {
  status?: AgentStatus;
  current_task?: string;
  gpu_utilization_pct?: number;
  gpu_memory_used_gb?: number;
  storage_gb_free?: number;
  uptime_s?: number;
  engines?: EngineStatus[];
  gpus?: GpuTelemetry[];
}

/** The payload keys every server command carries. */
export interface CommandPayload {
  model_path: string;
  engine_name: string;
  benchmark_name?: string;
  suite_name: string;
  engine_mode?: string;
  profile_id?: string;
  runtime_config?: Record<string, unknown>;
}

/** A command exactly as the server sent it (after shape validation). */
export interface RawServerCommand {
  command_id: string;
  test_id: string;
  type: string;
  payload: Record<string, unknown>;
}

export interface RunTestCommand {
  kind: "run_test";
  command_id: string;
  test_id: string;
  type: "run_test";
  payload: CommandPayload;
}

/** `model_path` is the model to evict, or {@link CLEANUP_ALL} for everything. */
export interface CleanupStorageCommand {
  kind: "cleanup_storage";
  command_id: string;
  test_id: string;
  type: "cleanup_storage";
  payload: CommandPayload;
}

/** A type this agent does not implement: kept so it can be reported failed. */
export interface UnknownCommand {
  kind: "unknown";
  command_id: string;
  test_id: string;
  type: string;
  payload: Record<string, unknown>;
}

/**
 * A command whose shape is wrong. Accepting a command is the commit point on
 * the server, so it is kept (with whatever ids could be read) for the agent
 * to report as failed rather than dropped.
 */
export interface InvalidCommand {
  kind: "invalid";
  command_id: string | undefined;
  test_id: string | undefined;
  type: string | undefined;
  error: string;
  raw: unknown;
}

export type ServerCommand = RunTestCommand | CleanupStorageCommand | UnknownCommand | InvalidCommand;

export const CLEANUP_ALL = "__cleanup__";

/** Settings as the server sends them: every value a string (tolerated: numbers, booleans). */
export type RawSettings = Record<string, string | number | boolean | null>;

/** Settings after normalisation. An absent key means "not set: keep the local value". */
export interface AgentSettings {
  auto_cleanup?: boolean;
  heartbeat_interval_s?: number;
  model_storage_dir?: string;
  model_share_source?: string;
  model_share_mount?: string;
  kitt_image?: string;
}

export interface HeartbeatResponse {
  ack: boolean;
  agent_id?: string;
  commands: ServerCommand[];
  settings: AgentSettings;
  /** Problems met while normalising settings (bad values are ignored, not fatal). */
  settingsProblems: string[];
  /** Top-level fields that could not be used (`ack: expected a boolean, ...`); the rest of the response still counts. */
  problems: string[];
}

/** `POST /api/v1/quicktest/<test_id>/logs` body. */
export interface LogLine {
  line: string;
}

export const TEST_STATUS_UPDATES = ["running", "completed", "failed"] as const;
export type StatusUpdate =
  | { status: "running" }
  | { status: "completed" }
  | { status: "failed"; error: string };

export const TEST_STATUSES = ["queued", "dispatched", "running", "completed", "failed"] as const;
export type TestStatus = (typeof TEST_STATUSES)[number];

/** `POST /api/v1/agents/<id>/results` body. */
export interface ResultReport {
  command_id: string;
  status: "completed" | "failed";
  container_id: string;
  error: string;
  result_data?: Record<string, unknown>;
}

export interface TestRow {
  id: string;
  agent_id: string | null;
  model_path: string;
  engine_name: string;
  benchmark_name: string | null;
  suite_name: string;
  /** The server's own status; new values are tolerated. */
  status: string;
  command_id: string | null;
  engine_mode: string | null;
  profile_id: string | null;
  created_at: string | null;
  started_at: string | null;
  completed_at: string | null;
  result_id: string | number | null;
  error: string | null;
}

export interface TestListItem extends TestRow {
  agent_name: string | null;
}

export interface TestList {
  items: TestListItem[];
  total: number;
  page: number;
  pages: number;
}

export interface TestLogs {
  lines: { line: string; created_at: string }[];
}

export interface PackageDigest {
  filename: string;
  sha256: string;
}

export interface BuildContextDigest {
  sha256: string;
}

export interface HealthResponse {
  status: string;
}

export interface VersionResponse {
  api_version: string;
  name: string;
  version: string;
}

export interface ErrorBody {
  error: string;
}

/* The agent's own HTTP API (served by the daemon). */

/** `POST /api/commands` body. */
export type CommandRequest = RawServerCommand;

export interface CommandAccepted {
  accepted: true;
  command_id: string;
}

export interface AgentStatusResponse {
  name: string;
  running: boolean;
  active_containers: number;
  active_streams: number;
  storage: { used_gb: number; free_gb: number; model_count: number };
  [extra: string]: unknown;
}

/** `data:` of an `event: log` on `GET /api/logs/<command_id>`. */
export interface SseLogEvent {
  command_id: string;
  line: string;
}
