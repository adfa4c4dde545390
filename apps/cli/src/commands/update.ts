import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Update extends BaseCommand {
  static override summary = "Install the agent package the KITT server offers (or roll back).";
  static override description = `Downloads the agent package from the server (/api/v1/agent/package), checks its SHA-256 against /api/v1/agent/package/sha256 (a mismatch or a missing digest aborts with nothing changed), unpacks it into ~/.kitt/agent/versions/<version>-<sha>/ and switches ~/.kitt/agent/current to it in one atomic rename. The version it replaces stays as ~/.kitt/agent/previous for --rollback; older ones are removed.

The package is an \`npm pack\` tarball of @kitt/cli with its dependencies bundled (see scripts/pack-agent.mjs). Run the service from ~/.kitt/agent/current/bin/run.js (install the service from there) so that a restart picks up the new version.`;

  static override examples = ["<%= config.bin %> update", "<%= config.bin %> update --restart", "<%= config.bin %> update --rollback --restart"];

  static override flags = {
    restart: Flags.boolean({ summary: "Restart the agent afterwards (systemd when installed, else stop + start)." }),
    rollback: Flags.boolean({ summary: "Switch back to the previous version instead of downloading." }),
    json: Flags.boolean({ summary: "Print the outcome as one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Update);
    const { homedir } = await import("node:os");
    const { join } = await import("node:path");
    const { loadCliConfig } = await import("../lib/config.js");
    const loaded = await loadCliConfig(flags.config);
    const home = homedir();
    let summary: Record<string, unknown>;
    let entry: string;
    if (flags.rollback) {
      const { rollback } = await import("../lib/update.js");
      const r = await rollback({ home });
      summary = { rolled_back: true, current: r.current, previous: r.previous };
      entry = join(home, ".kitt", "agent", "current", "bin", "run.js");
      if (!flags.json) this.out(`Rolled back: current is now ${r.current}${r.previous ? ` (${r.previous} kept as previous)` : ""}.`);
    } else {
      const { clientFor } = await import("../lib/server-client.js");
      const { updateFromServer } = await import("../lib/update.js");
      const client = await clientFor(loaded.config, { timeoutMs: 300_000 });
      try {
        const r = await updateFromServer(client, { home });
        summary = { ...r };
        entry = r.entry;
        if (!flags.json) {
          this.out(
            r.switched
              ? `Installed ${r.version} (sha256 ${r.sha256.slice(0, 12)}, ${r.bytes} bytes) as ${r.current}${r.previous ? `; previous: ${r.previous}` : ""}.`
              : `Already up to date: ${r.current}.`,
          );
        }
      } finally {
        client.close();
      }
    }
    if (flags.restart) {
      const { restartAgent } = await import("../lib/restart.js");
      const outcome = await restartAgent(loaded.config, loaded.path, entry);
      summary.restart = outcome;
      if (!flags.json) this.out(outcome);
    } else if (!flags.json) {
      this.out("Restart the agent to run it: kitt-agent update --restart (or sudo systemctl restart kitt-agent).");
    }
    if (flags.json) this.printJson(summary);
  }
}
