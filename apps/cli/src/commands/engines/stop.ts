import { Args, Flags } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class EnginesStop extends BaseCommand {
  static override summary = "Stop a native engine the agent started (or the ollama service).";
  static override description = `Through the running agent (stop_engine, answered at once: SIGTERM to the engine's process group, SIGKILL after 10 s; \`systemctl stop ollama\` when systemd runs ollama). When the agent is not running, this command stops the engine itself from the agent's record under its state dir (engines outlive the agent); a record whose pid now belongs to another process is never signalled.

Exits 1 when the engine is not running or could not be stopped.`;

  static override examples = ["<%= config.bin %> engines stop llama_cpp", "<%= config.bin %> engines stop ollama --json"];

  static override args = {
    name: Args.string({ description: "The engine: ollama, llama_cpp or vllm.", required: true }),
  };

  static override flags = {
    json: Flags.boolean({ summary: "Print the outcome as one JSON document." }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(EnginesStop);
    const { checkEngineName, stopEngine } = await import("../../lib/engines.js");
    const engine = checkEngineName(args.name);
    const { loadCliConfig } = await import("../../lib/config.js");
    const { config } = await loadCliConfig(flags.config);
    const outcome = await stopEngine(config, engine);
    if (flags.json) this.printJson(outcome);
    else if (outcome.success) this.out(`${engine} stopped (pid ${String(outcome.pid)}, ${outcome.stopped_by ?? "?"})${outcome.via === "direct" ? " by this command: the agent is not running" : ""}`);
    else this.note(`Error: ${outcome.error}`);
    if (!outcome.success) this.exit(1);
  }
}
