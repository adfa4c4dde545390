import { Flags } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class Engines extends BaseCommand {
  static override summary = "List the native inference engines on this host (Ollama, llama.cpp, vLLM).";
  static override description = `For each engine: installed or not, running or not (with its pid and port), version and binary. While the agent runs the list comes from it (GET /api/engines, probed now); otherwise this command probes the engines itself, reading the agent's records of engines it started (they outlive the agent) from its state dir.

Probing vLLM imports the module, which can take seconds.`;

  static override examples = ["<%= config.bin %> engines", "<%= config.bin %> engines --json"];

  static override flags = {
    json: Flags.boolean({ summary: "Print one JSON document: {source, engines}." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Engines);
    const { defaultConfig } = await import("@kitt/protocol");
    const { loadOptionalConfig } = await import("../../lib/optional-config.js");
    const { engineRows, listEngines } = await import("../../lib/engines.js");
    // Before init there is no agent to ask; the engines can still be probed.
    const config = (await loadOptionalConfig(flags.config)) ?? defaultConfig();
    const list = await listEngines(config);
    if (flags.json) {
      this.printJson(list);
      return;
    }
    const { renderTable } = await import("../../lib/table.js");
    this.out(renderTable(["ENGINE", "INSTALLED", "RUNNING", "PID", "PORT", "VERSION", "BINARY"], engineRows(list)));
    if (list.source === "probe") this.note("(the agent is not running: probed by this command)");
  }
}
