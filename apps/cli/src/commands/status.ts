import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Status extends BaseCommand {
  static override summary = "Show the configuration, whether the daemon runs, and the service state.";
  static override description = `Reads agent.yaml (the token masked), asks the local daemon for /api/status (running job, storage, heartbeat) and, when the systemd service is installed, systemd for its state.

Exit codes: 0 the daemon runs and serves, 1 it runs in error (the server rejects its token, heartbeats fail, a bad answer), 3 it is not running (or there is no agent.yaml), 2 agent.yaml is invalid. --json prints one document in every case: \`state\` (running, error, not-running, not-configured) and \`problem\` say the same.`;

  static override examples = ["<%= config.bin %> status", "<%= config.bin %> status --json"];

  static override flags = {
    json: Flags.boolean({ summary: "Print one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Status);
    // The same as the fast path in main.ts, which answers most `status` calls without oclif.
    const { runStatusCommand } = await import("../lib/status-command.js");
    const exitCode = await runStatusCommand(
      { json: flags.json, config: flags.config },
      { out: (t) => this.out(t), note: (t) => this.note(t), json: (v) => this.printJson(v) },
    );
    if (exitCode !== 0) this.exit(exitCode);
  }
}
