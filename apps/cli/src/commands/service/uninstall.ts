import { BaseCommand } from "../../lib/base-command.js";

export default class ServiceUninstall extends BaseCommand {
  static override summary = "Stop, disable and remove the systemd service (uses sudo).";
  static override description = "Stops and disables kitt-agent.service, removes its unit file (and the link `enable` made) and reloads systemd. Works on a half-installed service too (never enabled, unit file gone, no systemd running): a systemctl step that fails is shown as not done and the files are removed anyway. Nothing happens when it is not installed.";
  static override examples = ["<%= config.bin %> service uninstall"];

  async run(): Promise<void> {
    await this.parse(ServiceUninstall);
    const { serviceDeps, uninstallService } = await import("../../lib/service.js");
    for (const s of await uninstallService(serviceDeps())) this.out(`${s.step.padEnd(8)} ${s.ok ? s.detail : `not done: ${s.detail}`}`);
  }
}
