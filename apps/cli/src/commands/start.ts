import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";
import { LOG_FORMATS, type LogFormatFlag } from "../lib/fast-path.js";

export default class Start extends BaseCommand {
  static override summary = "Run the agent daemon in the foreground.";
  static override description = `Registers with the KITT server, heartbeats, runs the benchmarks it is sent and serves the local API on the configured port, until SIGTERM or Ctrl-C (then it cancels the running job and reports before exiting). This is what the systemd service runs.

Refuses to start when the pid file names a live agent; a stale pid file is replaced.`;

  static override examples = ["<%= config.bin %> start", "<%= config.bin %> start --preflight", "<%= config.bin %> start --log-format json"];

  static override flags = {
    insecure: Flags.boolean({ summary: "Do not verify the server's certificate (development only)." }),
    preflight: Flags.boolean({ summary: "Run the preflight checks first; refuse to start when a required one fails." }),
    "log-format": Flags.string({
      summary: "How log lines go to stdout: readable (pretty) or JSON lines (json); auto: pretty on a terminal, JSON otherwise (systemd, pipes).",
      options: [...LOG_FORMATS],
      default: "auto",
    }),
  };

  async run(): Promise<void> {
    // First: ps, top and ss name the agent kitt-agent from its first moment, not node or MainThread.
    process.title = "kitt-agent";
    const { flags } = await this.parse(Start);
    const { runStartCommand } = await import("../lib/start-command.js");
    await runStartCommand(
      { config: flags.config, insecure: flags.insecure, preflight: flags.preflight, logFormat: flags["log-format"] as LogFormatFlag },
      (text) => this.note(text),
    );
  }
}
