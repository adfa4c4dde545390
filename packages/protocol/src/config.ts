import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { isIP } from "node:net";
import { homedir as osHomedir, hostname as osHostname } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";

import * as yaml from "js-yaml";

import { CONFIG_FIELDS, type DOCKER_GPU_MODES, envNameFor, type EXECUTION_MODES, type FieldSpec, type LOG_LEVELS } from "./config-fields.js";
import { ConfigError } from "./errors.js";
import { isImageRef, parseBoolean } from "./settings.js";

export interface TlsConfig {
  cert?: string;
  key?: string;
  ca?: string;
}

/** agent.yaml after defaults, `~` expansion and env overrides. */
export interface AgentConfig {
  server_url: string;
  token: string;
  name: string;
  host: string;
  port: number;
  model_storage_dir: string;
  model_share_source: string;
  model_share_mount: string;
  auto_cleanup: boolean;
  heartbeat_interval_s: number;
  insecure: boolean;
  tls: TlsConfig;
  benchmark_command: string;
  execution: (typeof EXECUTION_MODES)[number];
  kitt_image: string;
  docker_gpus: (typeof DOCKER_GPU_MODES)[number];
  cancel_grace_s: number;
  max_queued_jobs: number;
  copy_concurrency: number;
  state_dir: string;
  log_level: (typeof LOG_LEVELS)[number];
}

export interface ConfigEnvironment {
  env?: Record<string, string | undefined>;
  homedir?: string;
  hostname?: string;
  cwd?: string;
}

export const DEFAULT_CONFIG_PATH = "~/.kitt/agent.yaml";

export function defaultConfig(envr: ConfigEnvironment = {}): AgentConfig {
  const home = envr.homedir ?? osHomedir();
  return {
    server_url: "",
    token: "",
    name: envr.hostname ?? osHostname(),
    host: "0.0.0.0",
    port: 8090,
    model_storage_dir: join(home, ".kitt", "models"),
    model_share_source: "",
    model_share_mount: "",
    auto_cleanup: true,
    heartbeat_interval_s: 30,
    insecure: false,
    tls: {},
    benchmark_command: "kitt",
    execution: "auto",
    kitt_image: "",
    docker_gpus: "auto",
    cancel_grace_s: 10,
    max_queued_jobs: 16,
    copy_concurrency: 4,
    state_dir: join(home, ".kitt"),
    log_level: "info",
  };
}

/** `~` and `~/x` -> the home directory; anything else unchanged. */
export function expandHome(path: string, home: string = osHomedir()): string {
  if (path === "~") return home;
  if (path.startsWith("~/")) return join(home, path.slice(2));
  return path;
}

/** The config path: explicit, else KITT_AGENT_CONFIG, else ~/.kitt/agent.yaml. */
export function resolveConfigPath(explicit: string | undefined, envr: ConfigEnvironment = {}): string {
  const env = envr.env ?? process.env;
  const raw = explicit ?? env.KITT_AGENT_CONFIG ?? DEFAULT_CONFIG_PATH;
  return resolve(envr.cwd ?? process.cwd(), expandHome(raw, envr.homedir ?? osHomedir()));
}

/** A DNS name: dot-separated labels of letters, digits and inner hyphens, at most 253 characters. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null) return "null";
  if (typeof value === "object") return Array.isArray(value) ? "a list" : "a mapping";
  return String(value);
}

/**
 * Converts one raw value (from YAML or an env string) for `spec`.
 * Returns the value or a problem sentence (without the prefix).
 */
function convert(spec: FieldSpec, raw: unknown, baseDir: string, home: string): { value: unknown } | { problem: string } {
  const bad = (what: string) => ({ problem: `${spec.key} must be ${what}, got ${show(raw)}` });
  switch (spec.kind) {
    case "int": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
      const range = `${spec.min ?? "-inf"}-${spec.max ?? "inf"}`;
      if (!Number.isInteger(n) || (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        return bad(`an integer ${range}`);
      }
      return { value: n };
    }
    case "bool": {
      const b = parseBoolean(raw);
      return b === undefined ? bad("true or false") : { value: b };
    }
    case "enum": {
      const values = spec.values ?? [];
      return typeof raw === "string" && values.includes(raw) ? { value: raw } : bad(`one of ${values.join(", ")}`);
    }
    case "url": {
      if (typeof raw !== "string") return bad("an http(s) URL");
      const text = raw.trim();
      if (text === "") return { value: "" };
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        return bad("an http(s) URL");
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") return bad("an http(s) URL");
      if (url.username !== "" || url.password !== "") {
        return { problem: `${spec.key} must not contain credentials (use token)` };
      }
      return { value: text.replace(/\/+$/, "") };
    }
    case "name": {
      if (typeof raw !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(raw)) {
        return bad("1-128 letters, digits, '.', '_' or '-'");
      }
      return { value: raw };
    }
    case "host": {
      if (typeof raw !== "string") return bad("an IP address or host name");
      const text = raw.trim();
      // A last label of digits only is a mistyped address (10.0.0.300), not a name.
      return isIP(text) !== 0 || (HOST_NAME.test(text) && !/(^|\.)\d+$/.test(text)) ? { value: text } : bad("an IP address or host name (0.0.0.0 for all interfaces, 127.0.0.1 for this host only)");
    }
    case "image": {
      if (typeof raw !== "string") return bad("a Docker image reference");
      const text = raw.trim();
      if (text !== "" && !isImageRef(text)) return bad("a Docker image reference like kitt:latest or registry/kitt:1.7");
      return { value: text };
    }
    case "string":
      if (typeof raw === "number") return { value: String(raw) };
      return typeof raw === "string" ? { value: raw } : bad("a string");
    case "path":
    case "optional-path": {
      if (typeof raw !== "string") return bad("a path");
      const text = raw.trim();
      if (text === "") return spec.kind === "optional-path" ? { value: "" } : bad("a non-empty path");
      if (text.includes("\0")) return bad("a path");
      const expanded = expandHome(text, home);
      return { value: isAbsolute(expanded) ? resolve(expanded) : resolve(baseDir, expanded) };
    }
  }
}

function getPath(obj: Record<string, unknown>, key: string): unknown {
  let cur: unknown = obj;
  for (const part of key.split(".")) {
    if (cur === null || typeof cur !== "object" || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split(".");
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    cur[part] ??= {};
    cur = cur[part] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1] as string] = value;
}

const KNOWN_TOP = new Set(CONFIG_FIELDS.map((f) => f.key.split(".")[0]));
const KNOWN_TLS = new Set(CONFIG_FIELDS.filter((f) => f.key.startsWith("tls.")).map((f) => f.key.slice(4)));

export interface LoadedConfig {
  config: AgentConfig;
  path: string;
  /** Things worth telling the user that do not stop the agent (unknown keys). */
  warnings: string[];
}

/** Parses YAML text from `path` into a mapping, or throws a one-line ConfigError. */
function parseYaml(text: string, path: string): Record<string, unknown> {
  // An empty file (or one holding only comments) is an empty mapping.
  if (text.split("\n").every((l) => /^\s*(#.*)?$/.test(l))) return {};
  let doc: unknown;
  try {
    doc = yaml.load(text, { filename: path });
  } catch (err) {
    const e = err as { mark?: { line: number; column: number }; reason?: string };
    const where = e.mark ? `:${e.mark.line + 1}:${e.mark.column + 1}` : "";
    throw new ConfigError(`${path}${where}: invalid YAML: ${e.reason ?? "parse error"}`, { file: path });
  }
  if (doc === undefined || doc === null) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(`${path}: must be a mapping of settings, got ${show(doc)}`, { file: path });
  }
  return doc as Record<string, unknown>;
}

/**
 * Builds an AgentConfig from a mapping (agent.yaml's content) plus env
 * overrides. Throws ConfigError naming the source (file path or env var)
 * and the field.
 */
export function resolveAgentConfig(
  doc: Record<string, unknown>,
  source: { path: string; requireServer?: boolean } & ConfigEnvironment,
): { config: AgentConfig; warnings: string[] } {
  const env = source.env ?? process.env;
  const home = source.homedir ?? osHomedir();
  const config = defaultConfig(source) as unknown as Record<string, unknown>;
  const warnings: string[] = [];

  for (const key of Object.keys(doc)) {
    if (!KNOWN_TOP.has(key)) warnings.push(`${source.path}: unknown setting "${key}" ignored`);
  }
  const tls = doc.tls;
  if (tls !== undefined && tls !== null) {
    if (typeof tls !== "object" || Array.isArray(tls)) {
      throw new ConfigError(`${source.path}: tls must be a mapping with cert, key, ca, got ${show(tls)}`, { file: source.path, field: "tls" });
    }
    for (const key of Object.keys(tls)) {
      if (!KNOWN_TLS.has(key)) warnings.push(`${source.path}: unknown setting "tls.${key}" ignored`);
    }
  }

  for (const spec of CONFIG_FIELDS) {
    const fromFile = getPath(doc, spec.key);
    const envName = envNameFor(spec.key);
    const fromEnv = env[envName];
    let raw: unknown;
    let where: string;
    let baseDir: string;
    if (fromEnv !== undefined) {
      raw = fromEnv;
      where = envName;
      baseDir = source.cwd ?? process.cwd();
    } else if (fromFile !== undefined && fromFile !== null) {
      raw = fromFile;
      where = source.path;
      baseDir = dirname(source.path);
    } else {
      continue;
    }
    const result = convert(spec, raw, baseDir, home);
    if ("problem" in result) {
      throw new ConfigError(`${where}: ${result.problem}`, { file: source.path, field: spec.key });
    }
    // Empty optional paths mean "not set".
    if (spec.key.startsWith("tls.") && result.value === "") continue;
    setPath(config, spec.key, result.value);
  }

  const out = config as unknown as AgentConfig;
  if (source.requireServer !== false && out.server_url === "") {
    throw new ConfigError(`${source.path}: server_url is required (run kitt-agent init --server URL)`, {
      file: source.path,
      field: "server_url",
    });
  }
  const tlsSet = [out.tls.cert, out.tls.key].filter((v) => v !== undefined).length;
  if (tlsSet === 1) {
    throw new ConfigError(`${source.path}: tls.cert and tls.key must be given together`, { file: source.path, field: "tls" });
  }
  return { config: out, warnings };
}

/**
 * Loads agent.yaml: defaults, then the file, then `KITT_AGENT_*` env
 * overrides. Every problem is a one-line ConfigError naming the file (or env
 * variable) and the field.
 */
export async function loadAgentConfig(
  options: { path?: string; requireServer?: boolean } & ConfigEnvironment = {},
): Promise<LoadedConfig> {
  const path = resolveConfigPath(options.path, options);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new ConfigError(`${path}: not found (run kitt-agent init --server URL first)`, { file: path, cause: err });
    }
    throw new ConfigError(`${path}: cannot read: ${code ?? String(err)}`, { file: path, cause: err });
  }
  const { config, warnings } = resolveAgentConfig(parseYaml(text, path), { ...options, path });
  return { config, path, warnings };
}

/** What `writeAgentConfig` writes: any subset of the fields, in file form. */
export type AgentConfigFile = Partial<Omit<AgentConfig, "tls">> & { tls?: TlsConfig };

/**
 * Writes agent.yaml atomically with mode 0600 (it holds the token): a
 * temporary file in the same directory, fsync, rename, fsync the directory.
 * A crash leaves the old file or the new one, never half of one.
 */
export async function writeAgentConfig(path: string, values: AgentConfigFile): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const body: Record<string, unknown> = {};
  for (const spec of CONFIG_FIELDS) {
    const v = getPath(values as Record<string, unknown>, spec.key);
    if (v !== undefined) setPath(body, spec.key, v);
  }
  const text =
    "# kitt-agent configuration (written by kitt-agent; holds the agent token: keep it 0600)\n" +
    yaml.dump(body, { lineWidth: 120, noRefs: true, sortKeys: false });
  // Unique enough for "wx" (which refuses to reuse a name); node:crypto is not worth loading
  // in every command that reads agent.yaml for this.
  const tmp = join(dir, `.${process.pid}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 10)}.agent.yaml.tmp`);
  const handle = await open(tmp, "wx", 0o600);
  try {
    await handle.writeFile(text, "utf8");
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const dirHandle = await open(dir, "r");
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
