import { Args, Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Update extends BaseCommand {
  static override summary = "Install a new agent version: the package the KITT server offers, or @kitt/cli from the npm registry (or roll back).";
  static override description = `Without --from-registry: downloads the agent package from the server (/api/v1/agent/package), checks its SHA-256 against /api/v1/agent/package/sha256 (a mismatch or a missing digest aborts with nothing changed). A stock KITT server offers the original Python agent there (or answers 500): that is said in one line and nothing changes.

With --from-registry [VERSION]: installs the published @kitt/cli (VERSION, default the registry's latest) from the npm registry (--registry, else npm_config_registry, else registry.npmjs.org), checking the tarball against the registry's sha512 integrity before it is unpacked, then installing its dependencies with npm.

Either way the package is unpacked into ~/.kitt/agent/versions/<version>-<sha>/ and ~/.kitt/agent/current is switched to it in one atomic rename. The version it replaces stays as ~/.kitt/agent/previous for --rollback; older ones are removed. When the version is already current nothing changes and --restart does nothing.

--restart restarts the systemd service, or an agent running in the background; an agent running in the foreground on a terminal is never replaced behind its back (stop it and start the new version yourself). Run the service from ~/.kitt/agent/current/bin/run.js so that a restart picks up the new version.`;

  static override examples = [
    "<%= config.bin %> update --restart",
    "<%= config.bin %> update --from-registry",
    "<%= config.bin %> update --from-registry 0.3.0 --restart",
    "<%= config.bin %> update --rollback --restart",
  ];

  static override args = {
    version: Args.string({ description: "With --from-registry: the exact version to install (default: the registry's latest)." }),
  };

  static override flags = {
    "from-registry": Flags.boolean({ summary: "Install @kitt/cli from the npm registry instead of the server's package." }),
    registry: Flags.string({ summary: "npm registry URL for --from-registry (default: npm_config_registry, else https://registry.npmjs.org/)." }),
    restart: Flags.boolean({ summary: "Restart the agent afterwards when something changed (systemd when installed, else a background agent)." }),
    rollback: Flags.boolean({ summary: "Switch back to the previous version instead of downloading.", exclusive: ["from-registry"] }),
    json: Flags.boolean({ summary: "Print the outcome as one JSON document." }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Update);
    const { homedir } = await import("node:os");
    const { join } = await import("node:path");
    const { UsageError } = await import("@kitt/protocol");
    if (args.version !== undefined && !flags["from-registry"]) throw new UsageError(`a VERSION (${args.version}) only goes with --from-registry`);
    if (flags.registry !== undefined && !flags["from-registry"]) throw new UsageError("--registry only goes with --from-registry");
    const { loadCliConfig } = await import("../lib/config.js");
    const loaded = await loadCliConfig(flags.config);
    const home = homedir();
    let summary: Record<string, unknown>;
    let entry: string;
    let changed: boolean;
    if (flags.rollback) {
      const { rollback } = await import("../lib/update.js");
      const r = await rollback({ home });
      summary = { rolled_back: true, current: r.current, previous: r.previous };
      entry = join(home, ".kitt", "agent", "current", "bin", "run.js");
      changed = true;
      if (!flags.json) this.out(`Rolled back: current is now ${r.current}${r.previous ? ` (${r.previous} kept as previous)` : ""}.`);
    } else if (flags["from-registry"]) {
      const { updateFromRegistry } = await import("../lib/registry-update.js");
      const { sha256: _sha, ...r } = await updateFromRegistry({ home, registry: flags.registry, version: args.version });
      summary = { ...r, source: "registry" };
      entry = r.entry;
      changed = r.switched;
      if (!flags.json) {
        this.out(
          r.switched
            ? `Installed @kitt/cli@${r.version} from ${r.registry} (${r.integrity.slice(0, 19)}..., ${r.bytes} bytes) as ${r.current}${r.previous ? `; previous: ${r.previous}` : ""}.`
            : `Already up to date: ${r.current}.`,
        );
      }
    } else {
      const { clientFor } = await import("../lib/server-client.js");
      const { updateFromServer } = await import("../lib/update.js");
      const client = await clientFor(loaded.config, { timeoutMs: 300_000 });
      try {
        const r = await updateFromServer(client, { home });
        summary = { ...r, source: "server" };
        entry = r.entry;
        changed = r.switched;
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
    if (flags.restart && !changed) {
      summary.restart = "nothing new: not restarted";
      if (!flags.json) this.out("Nothing new: the agent is not restarted.");
    } else if (flags.restart) {
      const { restartAgent } = await import("../lib/restart.js");
      const outcome = await restartAgent(loaded.config, loaded.path, entry);
      summary.restart = outcome;
      if (!flags.json) this.out(outcome);
    } else if (changed && !flags.json) {
      this.out("Restart the agent to run it: kitt-agent update --restart (or sudo systemctl restart kitt-agent).");
    }
    if (flags.json) this.printJson(summary);
  }
}
