import { Flags } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class TestList extends BaseCommand {
  static override summary = "List this agent's tests on the KITT server.";
  static override description = "Asks the server for the quick tests of this agent (newest first) and prints id, command id (what `kitt-agent logs` takes, as does the test id), model, engine, status and creation time.";

  static override examples = [
    "<%= config.bin %> test list",
    "<%= config.bin %> test list --status running",
    "<%= config.bin %> test list --limit 5 --json",
  ];

  static override flags = {
    status: Flags.string({ summary: "Only tests with this status (queued, dispatched, running, completed, failed)." }),
    limit: Flags.integer({ summary: "How many tests to show (1-100).", default: 20, min: 1, max: 100 }),
    json: Flags.boolean({ summary: "Print the tests as one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(TestList);
    const { loadCliConfig } = await import("../../lib/config.js");
    const { clientFor } = await import("../../lib/server-client.js");
    const { listAgentTests } = await import("../../lib/tests.js");
    const { config } = await loadCliConfig(flags.config);
    const client = await clientFor(config);
    try {
      const list = await listAgentTests(client, config.name, { status: flags.status, limit: flags.limit });
      if (flags.json) {
        this.printJson(list);
        return;
      }
      if (list.items.length === 0) {
        this.out(`No tests for agent ${config.name}${flags.status === undefined ? "" : ` with status ${flags.status}`}.`);
        return;
      }
      const { renderTable } = await import("../../lib/table.js");
      const rows = list.items.map((t) => [t.id, t.command_id ?? "-", t.model_path.split("/").filter(Boolean).pop() ?? t.model_path, t.engine_name, t.status, t.created_at ?? ""]);
      this.out(renderTable(["ID", "COMMAND", "MODEL", "ENGINE", "STATUS", "CREATED"], rows));
      if (list.total > list.items.length) this.out(`(${list.items.length} of ${list.total}; use --limit to see more)`);
    } finally {
      client.close();
    }
  }
}
