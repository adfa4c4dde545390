import { Flags } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class ServiceStatus extends BaseCommand {
  static override summary = "Show whether the systemd service is installed, enabled and running.";
  static override examples = ["<%= config.bin %> service status", "<%= config.bin %> service status --json"];
  static override flags = {
    json: Flags.boolean({ summary: "Print the state as one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ServiceStatus);
    const { serviceDeps, serviceState } = await import("../../lib/service.js");
    const state = await serviceState(serviceDeps());
    if (flags.json) this.printJson(state);
    else if (!state.installed && state.problem === undefined) this.out(`not installed (${state.unitPath} does not exist); install it with: kitt-agent service install`);
    else {
      const lines = [`installed  ${state.installed ? state.unitPath : `no (${state.unitPath} does not exist)`}`, `enabled    ${state.enabled}`, `active     ${state.active}`];
      if (state.problem !== undefined) lines.push(`problem    ${state.problem}`);
      this.out(lines.join("\n"));
    }
  }
}
