import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Status extends BaseCommand {
  static override summary = "Show the configuration, whether the daemon runs, and the service state.";
  static override description =
    "Reads agent.yaml (the token masked), asks the local daemon for /api/status (running job, storage, heartbeat) and, when the systemd service is installed, systemd for its state. Exits 0 whether or not the daemon runs: check `daemon.running` in --json.";

  static override examples = ["<%= config.bin %> status", "<%= config.bin %> status --json"];

  static override flags = {
    json: Flags.boolean({ summary: "Print one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Status);
    const { loadCliConfig } = await import("../lib/config.js");
    const { agentStatus, formatStatus } = await import("../lib/status.js");
    const loaded = await loadCliConfig(flags.config);
    for (const w of loaded.warnings) this.note(`warning: ${w}`);
    const status = await agentStatus(loaded, async () => {
      const { serviceDeps, serviceState } = await import("../lib/service.js");
      return serviceState(serviceDeps());
    });
    if (flags.json) this.printJson(status);
    else this.out(formatStatus(status));
  }
}
