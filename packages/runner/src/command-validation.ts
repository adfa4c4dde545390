/**
 * What the runner accepts from a command, checked before anything touches
 * the disk or a process. Ids become file names and URL segments, the other
 * values become arguments of the benchmark: each is held to a narrow
 * pattern, and a command that does not fit is refused with a one-line
 * reason naming the field.
 */
import {
  CLEANUP_ALL,
  isSafeId,
  KNOWN_ENGINES,
  KNOWN_SUITES,
  SAFE_ID_PATTERN,
  type EngineName,
  type ServerCommand,
  type SuiteName,
} from "@kitt/protocol";

/** Free-form names (engine mode, benchmark, profile): letters, digits, `.`, `_`, `-`. */
import { checkRunContainer, checkStopContainer, CommandRefused, type ContainerCommandSpec } from "./container-command.js";
import { checkEngineCommand, isEngineCommandType, type EngineCommandSpec } from "./engine-command.js";

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_MODEL_PATH = 4096;

export interface RunTestSpec {
  kind: "run_test";
  commandId: string;
  testId: string;
  modelPath: string;
  engine: EngineName;
  suite: SuiteName;
  engineMode: string | undefined;
  benchmarkName: string | undefined;
  profileId: string | undefined;
}

export interface CleanupSpec {
  kind: "cleanup_storage";
  commandId: string;
  testId: string;
  /** A model to evict, or undefined for everything (`__cleanup__`). */
  modelPath: string | undefined;
}

export type JobSpec = RunTestSpec | CleanupSpec | ContainerCommandSpec | EngineCommandSpec;

export type CheckedCommand = { ok: true; spec: JobSpec } | { ok: false; error: string };

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

class Refused extends Error {}

function safeId(field: string, value: unknown): string {
  if (!isSafeId(value)) throw new Refused(`${field} must match ${SAFE_ID_PATTERN}, got ${show(value)}`);
  return value;
}

function oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new Refused(`${field} must be one of ${allowed.join(", ")}, got ${show(value)}`);
  }
  return value as T;
}

/** Optional names: absent, null and "" all mean "not given" (the server sends `profile_id: ""`). */
function optionalName(field: string, value: unknown): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string" || !SAFE_NAME.test(value)) {
    throw new Refused(`${field} must be letters, digits, ".", "_" or "-" (at most 64), got ${show(value)}`);
  }
  return value;
}

/**
 * A model path: an absolute or relative file path, or a registry name
 * (`qwen2.5:7b`) passed through as is. Refused: control characters (NUL
 * ends a C string early), a leading `-` (it would read as an option of the
 * benchmark CLI) and `..` segments (a way out of the model share).
 */
export function checkModelPath(value: unknown, field = "payload.model_path"): string {
  if (typeof value !== "string") throw new Refused(`${field} must be a string, got ${show(value)}`);
  if (value === "" || value.trim() !== value) throw new Refused(`${field} must be a non-empty path without surrounding spaces, got ${show(value)}`);
  if (value.length > MAX_MODEL_PATH) throw new Refused(`${field} is longer than ${MAX_MODEL_PATH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new Refused(`${field} must not contain control characters, got ${show(value)}`);
  if (value.startsWith("-")) throw new Refused(`${field} must not start with "-", got ${show(value)}`);
  if (value.split(/[/\\]/).includes("..")) throw new Refused(`${field} must not contain ".." segments, got ${show(value)}`);
  return value;
}

function payloadOf(command: ServerCommand): Record<string, unknown> {
  if (command.kind === "invalid") return {};
  return command.payload as unknown as Record<string, unknown>;
}

/**
 * Checks a command the runner is about to take. `unsupported command type`
 * for kinds it does not run; the protocol's own shape error for invalid ones.
 */
export function checkCommand(command: ServerCommand): CheckedCommand {
  try {
    if (command.kind === "invalid") return { ok: false, error: command.error };
    const commandId = safeId("command_id", command.command_id);
    const testId = safeId("test_id", command.test_id);
    if (command.kind === "unknown") {
      const payload = command.payload !== null && typeof command.payload === "object" && !Array.isArray(command.payload) ? command.payload : {};
      if (command.type === "run_container") return { ok: true, spec: checkRunContainer(commandId, testId, payload) };
      if (command.type === "stop_container") return { ok: true, spec: checkStopContainer(commandId, testId, payload) };
      if (command.type === "check_docker") return { ok: true, spec: { kind: "check_docker", commandId, testId } };
      if (isEngineCommandType(command.type)) return { ok: true, spec: checkEngineCommand(command.type, commandId, testId, payload, (v) => checkModelPath(v)) };
      return { ok: false, error: `unsupported command type: ${command.type}` };
    }
    const payload = payloadOf(command);
    if (command.kind === "cleanup_storage") {
      const modelPath = payload.model_path === CLEANUP_ALL ? undefined : checkModelPath(payload.model_path);
      return { ok: true, spec: { kind: "cleanup_storage", commandId, testId, modelPath } };
    }
    return {
      ok: true,
      spec: {
        kind: "run_test",
        commandId,
        testId,
        modelPath: checkModelPath(payload.model_path),
        engine: oneOf("payload.engine_name", payload.engine_name, KNOWN_ENGINES),
        suite: oneOf("payload.suite_name", payload.suite_name, KNOWN_SUITES),
        engineMode: optionalName("payload.engine_mode", payload.engine_mode),
        benchmarkName: optionalName("payload.benchmark_name", payload.benchmark_name),
        profileId: optionalName("payload.profile_id", payload.profile_id),
      },
    };
  } catch (err) {
    if (err instanceof Refused || err instanceof CommandRefused) return { ok: false, error: `invalid ${describeType(command)} command: ${err.message}` };
    throw err;
  }
}

function describeType(command: ServerCommand): string {
  return command.kind === "invalid" ? "" : command.type;
}
