import { EngineConfigError } from "./errors.js";

/** One runtime_config key an engine understands, and where its value goes. */
export type ConfigKey =
  | { kind: "int"; min: number; max: number; flag?: string; env?: string }
  | { kind: "number"; min: number; max: number; minExclusive?: boolean; flag?: string; env?: string }
  | { kind: "choice"; choices: readonly string[]; flag?: string; env?: string }
  /** A free word (a quantization method): letters, digits, `_`, `-`, `.`; never starts with `-`. */
  | { kind: "word"; flag?: string; env?: string }
  /** true/false, or one of `values` passed as is; true/false become `on`/`off`. */
  | { kind: "switch"; values: readonly string[]; flag: string };

export interface MappedConfig {
  port: number;
  /** Flags, in the order of the engine's key table. */
  args: string[];
  /** Environment variables for the engine. */
  env: Record<string, string>;
}

/** Every engine takes `port`. */
const PORT_KEY: ConfigKey = { kind: "int", min: 1, max: 65535 };

const WORD = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string" ? `"${value}"` : typeof value === "object" ? "an object" : String(value);
}

/** Numbers may come as JSON numbers or as numeric strings (a web form's text field). */
function asNumber(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value.trim());
  return undefined;
}

function convert(key: string, spec: ConfigKey, value: unknown): string {
  const bad = (what: string): EngineConfigError =>
    new EngineConfigError(key, `runtime_config.${key} must be ${what} (got ${typeName(value)})`);
  switch (spec.kind) {
    case "int": {
      const n = asNumber(value);
      if (n === undefined || !Number.isInteger(n) || n < spec.min || n > spec.max) {
        throw bad(`an integer from ${spec.min} to ${spec.max}`);
      }
      return String(n);
    }
    case "number": {
      const n = asNumber(value);
      const low = spec.minExclusive === true ? n !== undefined && n <= spec.min : n !== undefined && n < spec.min;
      if (n === undefined || low || n > spec.max) {
        throw bad(`a number ${spec.minExclusive === true ? "above" : "from"} ${spec.min} ${spec.minExclusive === true ? "up " : ""}to ${spec.max}`);
      }
      return String(n);
    }
    case "choice":
      if (typeof value !== "string" || !spec.choices.includes(value)) throw bad(`one of ${spec.choices.join(", ")}`);
      return value;
    case "word":
      if (typeof value !== "string" || !WORD.test(value)) throw bad("a word of letters, digits, _ . - (not starting with -)");
      return value;
    case "switch":
      if (value === true || value === "true") return "on";
      if (value === false || value === "false") return "off";
      if (typeof value !== "string" || !spec.values.includes(value)) throw bad(`true, false or one of ${spec.values.join(", ")}`);
      return value;
  }
}

/**
 * Checks every runtime_config key against the engine's table and maps it to
 * flags and environment variables. Throws EngineConfigError naming the first
 * bad key, before anything is started. Keys match case-insensitively
 * (`OLLAMA_NUM_PARALLEL` is `ollama_num_parallel`); unknown keys are refused,
 * since a misspelt key silently ignored would benchmark the wrong setup.
 */
export function mapRuntimeConfig(
  engine: string,
  table: Readonly<Record<string, ConfigKey>>,
  runtimeConfig: unknown,
  defaultPort: number,
): MappedConfig {
  const config = runtimeConfig ?? {};
  if (typeof config !== "object" || Array.isArray(config)) {
    throw new EngineConfigError("runtime_config", `runtime_config must be an object (got ${typeName(config)})`);
  }
  const given = new Map<string, { key: string; value: unknown }>();
  for (const [key, value] of Object.entries(config)) {
    const name = key.toLowerCase();
    if (name !== "port" && !(name in table)) {
      const known = ["port", ...Object.keys(table)].join(", ");
      throw new EngineConfigError(key, `runtime_config.${key} is not a setting of ${engine} (known: ${known})`);
    }
    given.set(name, { key, value });
  }
  const portEntry = given.get("port");
  const port = portEntry === undefined ? defaultPort : Number(convert(portEntry.key, PORT_KEY, portEntry.value));
  const args: string[] = [];
  const env: Record<string, string> = {};
  for (const [name, spec] of Object.entries(table)) {
    const entry = given.get(name);
    if (entry === undefined) continue;
    const text = convert(entry.key, spec, entry.value);
    if (spec.flag !== undefined) args.push(spec.flag, text);
    if (spec.kind !== "switch" && spec.env !== undefined) env[spec.env] = text;
  }
  return { port, args, env };
}
