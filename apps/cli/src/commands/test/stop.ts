import { Args, Flags } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class TestStop extends BaseCommand {
  static override summary = "Stop one of this agent's tests, on the server and locally.";
  static override description = `Fetches the test, refuses a test of another agent, does nothing for a test that already ended, marks it failed ("Cancelled by user") on the server, then asks the local daemon to cancel the job so the benchmark process really stops. Each step's outcome is printed.

Exits 1 when a step that had to happen failed.`;

  static override examples = ["<%= config.bin %> test stop 3f2a9c0d1e4b5a6c", "<%= config.bin %> test stop 3f2a9c0d1e4b5a6c --json"];

  static override args = {
    test_id: Args.string({ description: "Id of the test (see `kitt-agent test list`).", required: true }),
  };

  static override flags = {
    json: Flags.boolean({ summary: "Print the steps as one JSON document." }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(TestStop);
    const { loadCliConfig } = await import("../../lib/config.js");
    const { clientFor } = await import("../../lib/server-client.js");
    const { stopTest } = await import("../../lib/tests.js");
    const { config } = await loadCliConfig(flags.config);
    const client = await clientFor(config);
    try {
      const report = await stopTest(client, config, args.test_id);
      if (flags.json) this.printJson(report);
      else for (const s of report.steps) this.out(`${s.step.padEnd(6)}  ${s.outcome.toUpperCase().padEnd(7)}  ${s.detail}`);
      if (!report.ok) this.exit(1);
    } finally {
      client.close();
    }
  }
}
