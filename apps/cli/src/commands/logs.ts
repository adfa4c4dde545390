import { Args, Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Logs extends BaseCommand {
  static override summary = "Print a job's log from the local daemon.";
  static override description = `Reads the job's log lines from the daemon's Server-Sent Events endpoint (GET /api/logs/<command_id>). Without --follow it prints the lines the daemon holds now and exits; with --follow it keeps printing new lines until the job ends, reconnecting after a dropped connection and resuming after the last line it printed (Last-Event-ID), so no line is printed twice. With --follow the exit code is 0 when the job completed, 1 when it failed.`;

  static override examples = ["<%= config.bin %> logs 3f2a9c0d1e4b5a6c", "<%= config.bin %> logs 3f2a9c0d1e4b5a6c --follow"];

  static override args = {
    command_id: Args.string({ description: "Command id of the job, or the test id (its latest job); see `kitt-agent test list`.", required: true }),
  };

  static override flags = {
    follow: Flags.boolean({ char: "f", summary: "Keep printing until the job ends." }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Logs);
    const { loadCliConfig } = await import("../lib/config.js");
    const { daemonTransport } = await import("../lib/daemon-transport.js");
    const { streamJobLogs } = await import("../lib/logs.js");
    const { config } = await loadCliConfig(flags.config);
    const transport = daemonTransport(config);
    const result = await streamJobLogs({
      baseUrl: transport.baseUrl,
      fetch: transport.fetch,
      token: config.token,
      commandId: args.command_id,
      follow: flags.follow,
      onLine: (line) => this.out(line),
      onNotice: (text) => this.note(`(${text})`),
    });
    if (result.end !== undefined) {
      this.note(`(job ${result.end.status}${result.end.error ? `: ${result.end.error}` : ""})`);
      if (flags.follow && result.end.status !== "completed") this.exit(1);
    }
  }
}
