import { Flags } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class ServiceInstall extends BaseCommand {
  static override summary = "Install kitt-agent as a systemd service (uses sudo).";
  static override description = `Generates /etc/systemd/system/kitt-agent.service (runs \`kitt-agent start\` as you, with this Node.js and this agent.yaml, restarting on failure) with Environment=PATH= set to this shell's PATH (absolute entries, each once), so the service finds the benchmark CLI, docker and nvidia-smi where preflight found them; installs it with sudo, reloads systemd and enables it. Starts it too unless --no-start is given. All or nothing: when systemctl fails (no systemd as PID 1, enable refused) the unit file is removed again. Refuses to replace an installed unit.`;

  static override examples = ["<%= config.bin %> service install", "<%= config.bin %> service install --no-start"];

  static override flags = {
    start: Flags.boolean({ summary: "Start the service once enabled.", default: true, allowNo: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ServiceInstall);
    const { loadCliConfig } = await import("../../lib/config.js");
    const { installService, serviceDeps } = await import("../../lib/service.js");
    const { unitOptionsFor } = await import("../../lib/service-setup.js");
    const loaded = await loadCliConfig(flags.config);
    const steps = await installService(serviceDeps(), unitOptionsFor(loaded), { start: flags.start });
    for (const s of steps) this.out(`${s.step.padEnd(8)} ${s.detail}`);
    this.out(flags.start ? "Check it with: kitt-agent service status" : "Start it with: sudo systemctl start kitt-agent");
  }
}
