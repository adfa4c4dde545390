import type { ConfigKey } from "./runtime-config.js";

export const ENGINE_NAMES = ["ollama", "llama_cpp", "vllm"] as const;
export type NativeEngineName = (typeof ENGINE_NAMES)[number];

/** How the command line of a started engine is built from the located executable. */
export interface LaunchInput {
  port: number;
  host: string;
  modelPath: string;
  flags: string[];
}

/**
 * Everything that differs between engines, as data: where the executable is,
 * how its version reads, its default port, readiness URL, runtime_config
 * keys and command line. The driver has no per-engine branches.
 */
export interface EngineSpec {
  name: NativeEngineName;
  defaultPort: number;
  /** GET path that answers 2xx once the engine serves. */
  readinessPath: string;
  /** A binary looked up on PATH (then in the agent's own bin dir), or a Python module imported by a python. */
  locate: { binary: string } | { pythonModule: string };
  /** The version out of `<binary> --version`'s output (stdout and stderr). */
  parseVersion(output: string): string;
  config: Readonly<Record<string, ConfigKey>>;
  /** argv after the executable, and extra environment. */
  launch(input: LaunchInput): { args: string[]; env: Record<string, string> };
  /** Whether a model path means anything at start. */
  takesModel: boolean;
  /** A systemd unit that may run this engine instead of the agent. */
  systemdUnit?: string;
  /** Default bound for "start means serving" (vLLM loads weights and compiles for minutes). */
  readyTimeoutMs: number;
}

function firstLineWith(output: string, word: RegExp): string {
  return output.split("\n").map((l) => l.trim()).find((l) => word.test(l)) ?? "";
}

export const OLLAMA: EngineSpec = {
  name: "ollama",
  defaultPort: 11434,
  readinessPath: "/api/version",
  locate: { binary: "ollama" },
  // "ollama version is 0.5.7" (older: "ollama version 0.1.32"); a "Warning: could not connect" line may precede it.
  parseVersion: (output) => firstLineWith(output, /version/i).replace(/^.*?version\s+(is\s+)?/i, ""),
  config: {
    ollama_num_parallel: { kind: "int", min: 1, max: 1024, env: "OLLAMA_NUM_PARALLEL" },
    ollama_max_loaded_models: { kind: "int", min: 1, max: 1024, env: "OLLAMA_MAX_LOADED_MODELS" },
    ollama_gpu_overhead: { kind: "int", min: 0, max: 2 ** 50, env: "OLLAMA_GPU_OVERHEAD" },
  },
  launch: ({ host, port }) => ({ args: ["serve"], env: { OLLAMA_HOST: `${host}:${port}` } }),
  takesModel: false,
  systemdUnit: "ollama",
  readyTimeoutMs: 60_000,
};

export const LLAMA_CPP: EngineSpec = {
  name: "llama_cpp",
  defaultPort: 8081,
  readinessPath: "/health",
  locate: { binary: "llama-server" },
  // "version: 4120 (1a2b3c4d)" on stderr.
  parseVersion: (output) => firstLineWith(output, /^version/i).replace(/^version:?\s*/i, ""),
  config: {
    n_gpu_layers: { kind: "int", min: -1, max: 100_000, flag: "--n-gpu-layers" },
    n_ctx: { kind: "int", min: 0, max: 16_777_216, flag: "--ctx-size" },
    n_batch: { kind: "int", min: 1, max: 1_048_576, flag: "--batch-size" },
    threads: { kind: "int", min: 1, max: 4096, flag: "--threads" },
    // Current llama-server takes a value (on|off|auto); a bare --flash-attn would swallow the next word.
    flash_attn: { kind: "switch", values: ["on", "off", "auto"], flag: "--flash-attn" },
  },
  launch: ({ port, host, modelPath, flags }) => ({
    args: ["--port", String(port), "--host", host, ...(modelPath === "" ? [] : ["--model", modelPath]), ...flags],
    env: {},
  }),
  takesModel: true,
  readyTimeoutMs: 120_000,
};

export const VLLM: EngineSpec = {
  name: "vllm",
  defaultPort: 8000,
  readinessPath: "/health",
  locate: { pythonModule: "vllm" },
  parseVersion: (output) => output.trim().split("\n").pop()?.trim() ?? "",
  config: {
    tensor_parallel_size: { kind: "int", min: 1, max: 1024, flag: "--tensor-parallel-size" },
    gpu_memory_utilization: { kind: "number", min: 0, max: 1, minExclusive: true, flag: "--gpu-memory-utilization" },
    max_model_len: { kind: "int", min: 1, max: 16_777_216, flag: "--max-model-len" },
    dtype: { kind: "choice", choices: ["auto", "half", "float16", "bfloat16", "float", "float32"], flag: "--dtype" },
    quantization: { kind: "word", flag: "--quantization" },
  },
  launch: ({ port, host, modelPath, flags }) => ({
    args: ["-m", "vllm.entrypoints.openai.api_server", "--port", String(port), "--host", host, ...(modelPath === "" ? [] : ["--model", modelPath]), ...flags],
    env: {},
  }),
  takesModel: true,
  readyTimeoutMs: 600_000,
};

export const ENGINE_SPECS: Readonly<Record<NativeEngineName, EngineSpec>> = {
  ollama: OLLAMA,
  llama_cpp: LLAMA_CPP,
  vllm: VLLM,
};

export function isNativeEngine(name: string): name is NativeEngineName {
  return (ENGINE_NAMES as readonly string[]).includes(name);
}
