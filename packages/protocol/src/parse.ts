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
  type RegisterResponse,
  type ServerCommand,
} from "./messages.js";
import { describeForeign, type JsonLimits, jsonValueProblem } from "./json-limits.js";
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

/** Bounds for one command from the server: a real one is a few hundred bytes, 4 levels deep. */
export const COMMAND_LIMITS: JsonLimits = { maxDepth: 32, maxBytes: 256 * 1024 };

const MAX_TYPE_CHARS = 64;

/**
 * The ids of a command that can be reported under: only ids fit for a URL
 * or a file name are kept, the rest is left out (the error says why).
 */
function readableIds(rec: Record<string, unknown>): { command_id: string | undefined; test_id: string | undefined; type: string | undefined } {
  return {
    command_id: isSafeId(rec.command_id) ? rec.command_id : undefined,
    test_id: isSafeId(rec.test_id) ? rec.test_id : undefined,
    type: typeof rec.type === "string" && rec.type.length <= MAX_TYPE_CHARS ? rec.type : undefined,
  };
}

/**
 * One command from a heartbeat response. Never throws: a command whose shape
 * is wrong, or that nests deeper or weighs more than {@link COMMAND_LIMITS},
 * comes back as `kind: "invalid"` with the ids that could be read, so that it
 * can be reported failed (the server never sends a command twice). Size and
 * depth are checked first, iteratively, before anything else walks it.
 */
export function parseServerCommand(raw: unknown): ServerCommand {
  const isRecord = raw !== null && typeof raw === "object" && !Array.isArray(raw);
  const rec = isRecord ? (raw as Record<string, unknown>) : {};
  const ids = readableIds(rec);
  if (!isRecord) return { kind: "invalid", ...ids, error: `invalid command: must be an object, got ${describeForeign(raw)}`, raw: undefined };
  const tooBig = jsonValueProblem(raw, COMMAND_LIMITS);
  if (tooBig !== undefined) return { kind: "invalid", ...ids, error: `invalid command: ${tooBig}`, raw: undefined };
  const shape = check("serverCommand", raw);
  if (shape !== undefined) return { kind: "invalid", ...ids, error: shape.message, raw };
  const cmd = raw as RawServerCommand;
  if (cmd.type.length > MAX_TYPE_CHARS) return { kind: "invalid", ...ids, error: `invalid command: type is longer than ${MAX_TYPE_CHARS} characters`, raw };
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

/**
 * A heartbeat response, read field by field so that one odd field never
 * costs the rest: the server has marked the commands dispatched already.
 * `ack` that is no boolean counts as true, an `agent_id` that is no
 * non-empty id is not adopted, `commands` that is no array and `settings`
 * that is no object are ignored; each is named once in `problems`. Each
 * command and each setting is read on its own (see parseServerCommand and
 * normalizeSettings). Only a body that is no JSON object is refused.
 */
export function parseHeartbeatResponse(data: unknown): HeartbeatResponse {
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new ProtocolError("heartbeat response", "", `must be an object, got ${describeForeign(data)}`);
  }
  const body = data as Record<string, unknown>;
  const problems: string[] = [];
  let ack = true;
  if (typeof body.ack === "boolean") ack = body.ack;
  else if (body.ack !== undefined && body.ack !== null) problems.push(`ack: expected a boolean, got ${describeForeign(body.ack)}; taken as true`);
  let commands: ServerCommand[] = [];
  if (Array.isArray(body.commands)) commands = (body.commands as unknown[]).map(parseServerCommand);
  else if (body.commands !== undefined && body.commands !== null) problems.push(`commands: expected an array, got ${describeForeign(body.commands)}; no command taken`);
  let rawSettings: Record<string, unknown> | undefined;
  if (body.settings !== null && typeof body.settings === "object" && !Array.isArray(body.settings)) rawSettings = body.settings as Record<string, unknown>;
  else if (body.settings !== undefined && body.settings !== null) problems.push(`settings: expected an object, got ${describeForeign(body.settings)}; ignored`);
  const { settings, problems: settingsProblems } = normalizeSettings(rawSettings);
  const out: HeartbeatResponse = { ack, commands, settings, settingsProblems, problems };
  if (isAgentId(body.agent_id)) out.agent_id = body.agent_id;
  else if (body.agent_id !== undefined && body.agent_id !== null) problems.push(`agent_id: expected a non-empty id, got ${describeForeign(body.agent_id)}; not adopted`);
  return out;
}

const MAX_AGENT_ID_CHARS = 256;

/** An id the server may rename this agent to: it goes into URLs (encoded) and agent.yaml. */
function isAgentId(value: unknown): value is string {
  // eslint-disable-next-line no-control-regex
  return typeof value === "string" && value.trim() !== "" && value.length <= MAX_AGENT_ID_CHARS && !/[\u0000-\u001f\u007f]/.test(value);
}

/** A body of `POST /api/commands` on the agent's own API (ids strictly checked). */
export function parseCommandRequest(data: unknown): CommandRequest {
  const body = validate<Omit<CommandRequest, "test_id"> & { test_id?: string }>("commandRequest", data);
  // Like the server's cleanup commands, a request without a test id uses the command id.
  return { ...body, test_id: body.test_id ?? body.command_id };
}
