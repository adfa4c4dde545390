/**
 * Readers for what the server (or a local client) sends: validate the shape,
 * normalise the sloppy parts, and return typed values. Anything that does
 * not fit becomes a ProtocolError naming the field.
 */
import { ProtocolError } from "./errors.js";
import {
  CLEANUP_ALL,
  type CommandPayload,
  type CommandRequest,
  type HeartbeatResponse,
  type RawServerCommand,
  type RawSettings,
  type RegisterResponse,
  type ServerCommand,
} from "./messages.js";
import { SAFE_ID_PATTERN } from "./schemas.js";
import { normalizeSettings, parseNumber } from "./settings.js";
import { check, validate } from "./validate.js";

const SAFE_ID = new RegExp(SAFE_ID_PATTERN);

/** True for ids fit to be used in file names and URL paths. */
export function isSafeId(value: unknown): value is string {
  return typeof value === "string" && SAFE_ID.test(value);
}

export function parseRegisterResponse(data: unknown): RegisterResponse {
  const body = validate<{ agent_id: string; heartbeat_interval_s?: number | string | null }>("registerResponse", data);
  const out: RegisterResponse = { agent_id: body.agent_id };
  if (body.heartbeat_interval_s !== undefined && body.heartbeat_interval_s !== null) {
    const n = parseNumber(body.heartbeat_interval_s);
    if (n === undefined || n <= 0) {
      throw new ProtocolError("register response", "heartbeat_interval_s", `must be a positive number, got ${JSON.stringify(body.heartbeat_interval_s)}`);
    }
    out.heartbeat_interval_s = n;
  }
  return out;
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/**
 * One command from a heartbeat response. Never throws: a command whose shape
 * is wrong comes back as `kind: "invalid"` so that it can be reported failed
 * (the server never sends a command twice).
 */
export function parseServerCommand(raw: unknown): ServerCommand {
  const rec = raw !== null && typeof raw === "object" ? (raw as Record<string, unknown>) : {};
  const ids = {
    command_id: stringOrUndefined(rec.command_id),
    test_id: stringOrUndefined(rec.test_id),
    type: stringOrUndefined(rec.type),
  };
  const shape = check("serverCommand", raw);
  if (shape !== undefined) return { kind: "invalid", ...ids, error: shape.message, raw };
  const cmd = raw as RawServerCommand;
  if (cmd.type === "run_test" || cmd.type === "cleanup_storage") {
    const payloadProblem = check("commandPayload", cmd.payload);
    if (payloadProblem !== undefined) {
      const error = new ProtocolError(`${cmd.type} command`, `payload.${payloadProblem.field}`, payloadProblem.detail);
      return { kind: "invalid", ...ids, error: error.message, raw };
    }
    const payload = cmd.payload as unknown as CommandPayload;
    return cmd.type === "run_test"
      ? { kind: "run_test", command_id: cmd.command_id, test_id: cmd.test_id, type: "run_test", payload }
      : { kind: "cleanup_storage", command_id: cmd.command_id, test_id: cmd.test_id, type: "cleanup_storage", payload };
  }
  return { kind: "unknown", command_id: cmd.command_id, test_id: cmd.test_id, type: cmd.type, payload: cmd.payload };
}

export function isCleanupAll(command: ServerCommand): boolean {
  return command.kind === "cleanup_storage" && command.payload.model_path === CLEANUP_ALL;
}

export function parseHeartbeatResponse(data: unknown): HeartbeatResponse {
  const body = validate<{ ack?: boolean; agent_id?: string; commands?: unknown[] | null; settings?: RawSettings | null }>(
    "heartbeatResponse",
    data,
  );
  const { settings, problems } = normalizeSettings(body.settings);
  const out: HeartbeatResponse = {
    ack: body.ack ?? true,
    commands: (body.commands ?? []).map(parseServerCommand),
    settings,
    settingsProblems: problems,
  };
  if (body.agent_id !== undefined) out.agent_id = body.agent_id;
  return out;
}

/** A body of `POST /api/commands` on the agent's own API (ids strictly checked). */
export function parseCommandRequest(data: unknown): CommandRequest {
  const body = validate<Omit<CommandRequest, "test_id"> & { test_id?: string }>("commandRequest", data);
  // Like the server's cleanup commands, a request without a test id uses the command id.
  return { ...body, test_id: body.test_id ?? body.command_id };
}
