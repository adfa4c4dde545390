import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Stop extends BaseCommand {
  static override summary = "Stop the agent started with `kitt-agent start`.";
  static override description = `Sends SIGTERM to the process in the pid file (<state_dir>/agent.pid, normally ~/.kitt/agent.pid) and waits for it to exit; the agent cancels its running benchmark and reports before it goes. A pid file naming a process that is gone is removed; one naming a process that is not a kitt-agent is left alone and nothing is signalled.

Under systemd use \`sudo systemctl stop kitt-agent\` instead (systemd would restart a process stopped behind its back only on failure, but it keeps its own state).`;

  static override examples = ["<%= config.bin %> stop", "<%= config.bin %> stop --timeout 60", "<%= config.bin %> stop --json"];

  static override flags = {
    timeout: Flags.integer({ summary: "Seconds to wait for the agent to exit.", default: 30, min: 1, max: 3600 }),
    json: Flags.boolean({ summary: "Print the pid and how long it took as one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Stop);
    const { pidFileFor } = await import("../lib/agent-paths.js");
    const { stopAgent } = await import("../lib/pid.js");
    const pidFile = await pidFileFor(flags.config);
    const outcome = await stopAgent(pidFile, flags.timeout * 1000);
    const seconds = Math.round(outcome.waitedMs / 100) / 10;
    if (flags.json) this.printJson({ pid: outcome.pid, stopped: true, seconds });
    else this.out(`Stopped the agent (pid ${outcome.pid}) in ${seconds.toFixed(1)} s.`);
  }
}
