import { describe, expect, it } from "vitest";
import { LLAMA_CPP, OLLAMA, VLLM } from "./engine-specs.js";
import { EngineConfigError } from "./errors.js";
import { mapRuntimeConfig } from "./runtime-config.js";

const refusal = (fn: () => unknown): { key: string; message: string } => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(EngineConfigError);
    return { key: (err as EngineConfigError).key, message: (err as Error).message };
  }
  throw new Error("expected a refusal");
};

describe("mapRuntimeConfig", () => {
  it("maps llama.cpp keys to flags in table order, port apart", () => {
    const mapped = mapRuntimeConfig("llama_cpp", LLAMA_CPP.config, { flash_attn: true, n_ctx: "4096", port: 9001, n_gpu_layers: 99 }, 8081);
    expect(mapped).toEqual({ port: 9001, args: ["--n-gpu-layers", "99", "--ctx-size", "4096", "--flash-attn", "on"], env: {} });
  });

  it("maps vLLM keys and keeps the default port", () => {
    const mapped = mapRuntimeConfig("vllm", VLLM.config, { gpu_memory_utilization: 0.85, dtype: "bfloat16", quantization: "awq_marlin" }, 8000);
    expect(mapped).toEqual({ port: 8000, args: ["--gpu-memory-utilization", "0.85", "--dtype", "bfloat16", "--quantization", "awq_marlin"], env: {} });
  });

  it("maps ollama keys (either case) to environment variables", () => {
    const mapped = mapRuntimeConfig("ollama", OLLAMA.config, { OLLAMA_NUM_PARALLEL: 4, ollama_max_loaded_models: 2 }, 11434);
    expect(mapped).toEqual({ port: 11434, args: [], env: { OLLAMA_NUM_PARALLEL: "4", OLLAMA_MAX_LOADED_MODELS: "2" } });
  });

  it("takes no runtime_config as the defaults", () => {
    expect(mapRuntimeConfig("vllm", VLLM.config, undefined, 8000)).toEqual({ port: 8000, args: [], env: {} });
    expect(mapRuntimeConfig("vllm", VLLM.config, null, 8000)).toEqual({ port: 8000, args: [], env: {} });
  });

  it.each([
    [LLAMA_CPP, { port: 70000 }, "port", "runtime_config.port must be an integer from 1 to 65535 (got 70000)"],
    [LLAMA_CPP, { port: "8080; rm -rf /" }, "port", 'runtime_config.port must be an integer from 1 to 65535 (got "8080; rm -rf /")'],
    [LLAMA_CPP, { n_gpu_layers: 1.5 }, "n_gpu_layers", "runtime_config.n_gpu_layers must be an integer from -1 to 100000 (got 1.5)"],
    [LLAMA_CPP, { threads: 0 }, "threads", "runtime_config.threads must be an integer from 1 to 4096 (got 0)"],
    [LLAMA_CPP, { flash_attn: "yes" }, "flash_attn", 'runtime_config.flash_attn must be true, false or one of on, off, auto (got "yes")'],
    [VLLM, { gpu_memory_utilization: 0 }, "gpu_memory_utilization", "runtime_config.gpu_memory_utilization must be a number above 0 up to 1 (got 0)"],
    [VLLM, { gpu_memory_utilization: 1.2 }, "gpu_memory_utilization", "runtime_config.gpu_memory_utilization must be a number above 0 up to 1 (got 1.2)"],
    [VLLM, { dtype: "int3" }, "dtype", 'runtime_config.dtype must be one of auto, half, float16, bfloat16, float, float32 (got "int3")'],
    [VLLM, { quantization: "--trust-remote-code" }, "quantization", 'runtime_config.quantization must be a word of letters, digits, _ . - (not starting with -) (got "--trust-remote-code")'],
    [VLLM, { tensor_parallel_size: [2] }, "tensor_parallel_size", "runtime_config.tensor_parallel_size must be an integer from 1 to 1024 (got an array)"],
    [OLLAMA, { ollama_num_parallel: -1 }, "ollama_num_parallel", "runtime_config.ollama_num_parallel must be an integer from 1 to 1024 (got -1)"],
  ])("refuses %#: names the key and what it must be", (spec, config, key, message) => {
    expect(refusal(() => mapRuntimeConfig(spec.name, spec.config, config, spec.defaultPort))).toEqual({ key, message });
  });

  it("refuses an unknown key, listing the known ones", () => {
    const r = refusal(() => mapRuntimeConfig("llama_cpp", LLAMA_CPP.config, { n_gpu_layer: 99 }, 8081));
    expect(r.key).toBe("n_gpu_layer");
    expect(r.message).toBe("runtime_config.n_gpu_layer is not a setting of llama_cpp (known: port, n_gpu_layers, n_ctx, n_batch, threads, flash_attn)");
  });

  it("refuses a runtime_config that is not an object", () => {
    expect(refusal(() => mapRuntimeConfig("vllm", VLLM.config, [1], 8000))).toEqual({
      key: "runtime_config",
      message: "runtime_config must be an object (got an array)",
    });
  });
});
