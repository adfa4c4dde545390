import { Args, Flags } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class EnginesInstall extends BaseCommand {
  static override summary = "Install a native engine through the agent.";
  static override description = `Queues install_engine on the running agent (it waits behind a running benchmark in the agent's one job queue) and prints the installer's output until it ends. An engine already installed is a success at once ("already installed"). The recipes need the internet: ollama's install script; a llama.cpp source build (CUDA when nvcc is found) into ~/.kitt/bin; a vLLM venv in ~/.kitt/vllm-venv.

Needs the agent running. Exits 1 when the install failed.`;

  static override examples = ["<%= config.bin %> engines install llama_cpp", "<%= config.bin %> engines install vllm --json"];

  static override args = {
    name: Args.string({ description: "The engine: ollama, llama_cpp or vllm.", required: true }),
  };

  static override flags = {
    json: Flags.boolean({ summary: "Print the outcome as one JSON document (the installer's output goes to stderr)." }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(EnginesInstall);
    const { checkEngineName, runEngineJob } = await import("../../lib/engines.js");
    const engine = checkEngineName(args.name);
    const { loadCliConfig } = await import("../../lib/config.js");
    const { config } = await loadCliConfig(flags.config);
    const outcome = await runEngineJob(config, "install_engine", engine, {}, {
      onLine: (line) => (flags.json ? this.note(line) : this.out(line)),
      onNotice: (text) => this.note(`(${text})`),
    });
    if (flags.json) this.printJson(outcome);
    else if (outcome.status === "completed") {
      const r = outcome.result ?? {};
      const version = typeof r.version === "string" && r.version !== "" ? ` ${r.version}` : "";
      this.out(`${engine}${version} ${r.already_installed === true ? "was already installed" : "installed"}${typeof r.binary_path === "string" ? ` (${r.binary_path})` : ""}`);
    }
    if (outcome.status !== "completed") {
      if (!flags.json) this.note(`Error: ${engine} was not installed: ${outcome.error ?? outcome.status}`);
      this.exit(1);
    }
  }
}
