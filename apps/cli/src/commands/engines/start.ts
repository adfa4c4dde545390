import { Args, Flags } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class EnginesStart extends BaseCommand {
  static override summary = "Start a native engine through the agent and wait until it serves.";
  static override description = `Queues start_engine on the running agent (it waits behind a running benchmark in the agent's one job queue, as when the server's Engines page starts it), prints the engine's output while it comes up, and ends once the engine answers its readiness endpoint on its port. The engine keeps running when the agent restarts; stop it with \`kitt-agent engines stop NAME\`.

--port and --set key=value become the runtime_config the server would send (e.g. n_ctx, n_gpu_layers, flash_attn for llama_cpp; tensor_parallel_size, gpu_memory_utilization, max_model_len, dtype, quantization for vllm; ollama_num_parallel, ollama_max_loaded_models, ollama_gpu_overhead for ollama). They are checked before anything is queued: a bad one is an error naming the key.

Needs the agent running. Exits 1 when the engine did not come up (its last output lines are in the error).`;

  static override examples = [
    "<%= config.bin %> engines start llama_cpp --port 8091 --model /data/models/qwen2.5-0.5b-q4.gguf --set n_ctx=4096 --set n_gpu_layers=99",
    "<%= config.bin %> engines start vllm --model /data/models/Qwen2.5-0.5B-Instruct --set gpu_memory_utilization=0.8",
    "<%= config.bin %> engines start ollama --json",
  ];

  static override args = {
    name: Args.string({ description: "The engine: ollama, llama_cpp or vllm.", required: true }),
  };

  static override flags = {
    port: Flags.integer({ summary: "Port the engine serves on (default: the engine's own: 11434, 8081, 8000).", min: 1, max: 65535 }),
    model: Flags.string({ summary: "Model the engine loads (a path, or what the agent can stage)." }),
    set: Flags.string({ summary: "A runtime_config setting, key=value (repeatable).", multiple: true }),
    json: Flags.boolean({ summary: "Print the outcome as one JSON document (the engine's output goes to stderr)." }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(EnginesStart);
    const { checkEngineName, runEngineJob, startConfig } = await import("../../lib/engines.js");
    const engine = checkEngineName(args.name);
    const runtimeConfig = startConfig(engine, { port: flags.port, set: flags.set });
    const { loadCliConfig } = await import("../../lib/config.js");
    const { config } = await loadCliConfig(flags.config);
    const outcome = await runEngineJob(
      config,
      "start_engine",
      engine,
      { runtime_config: runtimeConfig, ...(flags.model === undefined ? {} : { model_path: flags.model }) },
      { onLine: (line) => (flags.json ? this.note(line) : this.out(line)), onNotice: (text) => this.note(`(${text})`) },
    );
    if (flags.json) this.printJson(outcome);
    else if (outcome.status === "completed") {
      const r = outcome.result ?? {};
      this.out(`${engine} ${r.already_running === true ? "was already running" : "serves"} on port ${String(r.port)} (pid ${String(r.pid)})`);
    }
    if (outcome.status !== "completed") {
      if (!flags.json) this.note(`Error: ${engine} did not start: ${outcome.error ?? outcome.status}`);
      this.exit(1);
    }
  }
}
