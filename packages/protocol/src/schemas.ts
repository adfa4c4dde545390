/**
 * JSON Schemas (draft-07, compiled once by ajv in validate.ts) for every
 * message of the protocol. Responses from the server are read tolerantly
 * (unknown keys allowed, nullable where the server writes null); what the
 * agent writes is described exactly (no unknown keys).
 */
import { AGENT_STATUSES, ENVIRONMENT_TYPES } from "./messages.js";

/** Ids that end up in file names and URLs: no dots, no slashes. */
export const SAFE_ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$";

const str = { type: "string" } as const;
const nonEmpty = { type: "string", minLength: 1 } as const;
const num = { type: "number" } as const;
const nullableStr = { type: ["string", "null"] } as const;

const registerRequest = {
  $id: "register request",
  type: "object",
  required: ["name", "hostname"],
  additionalProperties: false,
  properties: {
    name: nonEmpty,
    hostname: nonEmpty,
    port: { type: "integer", minimum: 1, maximum: 65535 },
    gpu_info: str,
    gpu_count: { type: "integer", minimum: 0 },
    cpu_info: str,
    cpu_arch: str,
    ram_gb: { type: "integer", minimum: 0 },
    environment_type: { enum: [...ENVIRONMENT_TYPES] },
    fingerprint: str,
    kitt_version: str,
    capabilities: { type: "array", items: str },
    hardware_details: str,
  },
} as const;

const registerResponse = {
  $id: "register response",
  type: "object",
  required: ["agent_id"],
  properties: {
    agent_id: nonEmpty,
    // An int on the wire; tolerated as a numeric string (parse.ts normalises).
    heartbeat_interval_s: { type: ["number", "string", "null"] },
  },
} as const;

const gpuTelemetry = {
  type: "object",
  required: ["index", "name", "uuid"],
  additionalProperties: false,
  properties: {
    index: { type: "integer", minimum: 0 },
    name: str,
    uuid: str,
    utilization_pct: num,
    memory_used_gb: num,
    memory_total_gb: num,
    temperature_c: num,
    power_w: num,
  },
} as const;

const heartbeatRequest = {
  $id: "heartbeat request",
  type: "object",
  additionalProperties: false,
  properties: {
    status: { enum: [...AGENT_STATUSES] },
    current_task: str,
    gpu_utilization_pct: num,
    gpu_memory_used_gb: num,
    storage_gb_free: num,
    uptime_s: num,
    engines: {
      type: "array",
      items: {
        type: "object",
        required: ["engine", "installed", "running"],
        additionalProperties: false,
        properties: {
          engine: str,
          installed: { type: "boolean" },
          running: { type: "boolean" },
          version: str,
          binary_path: str,
        },
      },
    },
    gpus: { type: "array", items: gpuTelemetry },
  },
} as const;

// The documented shape. parse.ts reads a response field by field instead
// (one odd field must not cost the others), so this one only describes it.
const heartbeatResponse = {
  $id: "heartbeat response",
  type: "object",
  properties: {
    ack: { type: "boolean" },
    agent_id: nonEmpty,
    commands: { type: ["array", "null"] },
    settings: {
      type: ["object", "null"],
      additionalProperties: { type: ["string", "number", "boolean", "null"] },
    },
  },
} as const;

const serverCommand = {
  $id: "command",
  type: "object",
  required: ["command_id", "test_id", "type", "payload"],
  properties: {
    command_id: nonEmpty,
    test_id: nonEmpty,
    type: nonEmpty,
    payload: { type: "object" },
  },
} as const;

const commandPayload = {
  $id: "command payload",
  type: "object",
  required: ["model_path", "engine_name", "suite_name"],
  properties: {
    model_path: str,
    engine_name: str,
    benchmark_name: nullableStr,
    suite_name: str,
    engine_mode: nullableStr,
    profile_id: nullableStr,
    runtime_config: { type: ["object", "null"] },
  },
} as const;

const logLine = {
  $id: "log line",
  type: "object",
  required: ["line"],
  additionalProperties: false,
  properties: { line: str },
} as const;

const statusUpdate = {
  $id: "status update",
  type: "object",
  required: ["status"],
  additionalProperties: false,
  properties: {
    status: { enum: ["running", "completed", "failed"] },
    error: str,
  },
  if: { properties: { status: { const: "failed" } } },
  then: { required: ["error"], properties: { error: nonEmpty } },
  else: { properties: { error: false } },
} as const;

const resultReport = {
  $id: "result report",
  type: "object",
  required: ["command_id", "status", "container_id", "error"],
  additionalProperties: false,
  properties: {
    command_id: nonEmpty,
    status: { enum: ["completed", "failed"] },
    container_id: str,
    error: str,
    result_data: { type: "object" },
  },
} as const;

const testRowProperties = {
  id: nonEmpty,
  agent_id: nullableStr,
  model_path: str,
  engine_name: str,
  benchmark_name: nullableStr,
  suite_name: str,
  status: str,
  command_id: nullableStr,
  engine_mode: nullableStr,
  profile_id: nullableStr,
  created_at: nullableStr,
  started_at: nullableStr,
  completed_at: nullableStr,
  result_id: { type: ["string", "integer", "null"] },
  error: nullableStr,
} as const;

const testRow = {
  $id: "test row",
  type: "object",
  required: ["id", "model_path", "engine_name", "suite_name", "status"],
  properties: testRowProperties,
} as const;

const testList = {
  $id: "test list",
  type: "object",
  required: ["items", "total", "page", "pages"],
  properties: {
    items: {
      type: "array",
      items: {
        type: "object",
        required: ["id", "model_path", "engine_name", "suite_name", "status"],
        properties: { ...testRowProperties, agent_name: nullableStr },
      },
    },
    total: { type: "integer", minimum: 0 },
    page: { type: "integer", minimum: 0 },
    pages: { type: "integer", minimum: 0 },
  },
} as const;

const testLogs = {
  $id: "test logs",
  type: "object",
  required: ["lines"],
  properties: {
    lines: {
      type: "array",
      items: {
        type: "object",
        required: ["line"],
        properties: { line: str, created_at: nullableStr },
      },
    },
  },
} as const;

const packageDigest = {
  $id: "package digest",
  type: "object",
  required: ["filename", "sha256"],
  properties: {
    filename: nonEmpty,
    sha256: { type: "string", pattern: "^[0-9a-fA-F]{64}$" },
  },
} as const;

/** `GET /api/v1/agent/build-context/sha256`: the digest the build context must match. */
const buildContextDigest = {
  $id: "build context digest",
  type: "object",
  required: ["sha256"],
  properties: {
    sha256: { type: "string", pattern: "^[0-9a-fA-F]{64}$" },
  },
} as const;

const health = {
  $id: "health response",
  type: "object",
  required: ["status"],
  properties: { status: str },
} as const;

const version = {
  $id: "version response",
  type: "object",
  required: ["api_version", "name", "version"],
  properties: { api_version: str, name: str, version: str },
} as const;

const errorBody = {
  $id: "error body",
  type: "object",
  required: ["error"],
  properties: { error: str },
} as const;

/** `POST /api/commands` on the agent: ids are checked strictly here. */
const commandRequest = {
  $id: "command request",
  type: "object",
  required: ["command_id", "type", "payload"],
  additionalProperties: false,
  properties: {
    command_id: { type: "string", pattern: SAFE_ID_PATTERN },
    test_id: { type: "string", pattern: SAFE_ID_PATTERN },
    type: { type: "string", pattern: "^[a-z_]{1,64}$" },
    payload: { type: "object" },
  },
} as const;

const commandAccepted = {
  $id: "command accepted",
  type: "object",
  required: ["accepted", "command_id"],
  additionalProperties: false,
  properties: { accepted: { const: true }, command_id: str },
} as const;

const agentStatusResponse = {
  $id: "agent status response",
  type: "object",
  required: ["name", "running", "active_containers", "active_streams", "storage"],
  properties: {
    name: str,
    running: { type: "boolean" },
    active_containers: { type: "integer", minimum: 0 },
    active_streams: { type: "integer", minimum: 0 },
    storage: {
      type: "object",
      required: ["used_gb", "free_gb", "model_count"],
      properties: {
        used_gb: num,
        free_gb: num,
        model_count: { type: "integer", minimum: 0 },
      },
    },
  },
} as const;

const sseLogEvent = {
  $id: "log event",
  type: "object",
  required: ["command_id", "line"],
  additionalProperties: false,
  properties: { command_id: str, line: str },
} as const;

export const schemas = {
  registerRequest,
  registerResponse,
  heartbeatRequest,
  heartbeatResponse,
  serverCommand,
  commandPayload,
  logLine,
  statusUpdate,
  resultReport,
  testRow,
  testList,
  testLogs,
  packageDigest,
  buildContextDigest,
  health,
  version,
  errorBody,
  commandRequest,
  commandAccepted,
  agentStatusResponse,
  sseLogEvent,
} as const;

export type SchemaName = keyof typeof schemas;

