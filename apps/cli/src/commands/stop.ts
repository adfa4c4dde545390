import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Stop extends BaseCommand {
  static override summary = "Stop the agent started with `kitt-agent start`.";
  static override description = `Sends SIGTERM to the process in the pid file (<state_dir>/agent.pid, normally ~/.kitt/agent.pid) and waits for it to exit; the agent cancels its running benchmark and reports before it goes. A pid file naming a process that is gone is removed; one naming a process that is not a kitt-agent is left alone and nothing is signalled.

With --drain the agent first stops taking jobs (it sends no more heartbeats, since the server hands out a command with each, and its local API refuses new commands), lets the running job and those already queued finish, then stops by itself. --timeout bounds that wait (default: no limit); when it runs out the agent is stopped as without --drain, cancelling what still runs. Interrupting this command leaves the agent draining.

Under systemd use \`sudo systemctl stop kitt-agent\` instead (systemd would restart a process stopped behind its back only on failure, but it keeps its own state); --drain works there too, and the drained service stays stopped.`;

  static override examples = [
    "<%= config.bin %> stop",
    "<%= config.bin %> stop --timeout 60",
    "<%= config.bin %> stop --json",
    "<%= config.bin %> stop --drain",
    "<%= config.bin %> stop --drain --timeout 3600",
  ];

  static override flags = {
    drain: Flags.boolean({ summary: "Take no new job, let the running and queued ones finish, then stop." }),
    timeout: Flags.integer({
      summary: "Seconds to wait for the agent to exit (default 30); with --drain, for its jobs to finish before they are cancelled (default: no limit).",
      min: 1,
      max: 7 * 24 * 3600,
    }),
    json: Flags.boolean({ summary: "Print the pid and how long it took (with --drain: whether it drained) as one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Stop);
    const seconds = (ms: number) => Math.round(ms / 100) / 10;
    if (flags.drain) {
      const { drainAgent } = await import("../lib/drain.js");
      const limit = flags.timeout === undefined ? "no limit" : `at most ${flags.timeout} s`;
      const outcome = await drainAgent(flags.config, flags.timeout === undefined ? undefined : flags.timeout * 1000, (s) =>
        this.note(`Draining the agent (pid ${s.pid}): no new jobs; waiting for ${s.running} running and ${s.queued} queued job(s) to finish (${limit}).`),
      );
      const took = seconds(outcome.waitedMs);
      if (flags.json) this.printJson({ pid: outcome.pid, stopped: true, drained: outcome.drained, running: outcome.running, queued: outcome.queued, seconds: took });
      else if (outcome.drained) this.out(`Drained and stopped the agent (pid ${outcome.pid}) in ${took.toFixed(1)} s.`);
      else this.out(`The jobs did not finish within ${flags.timeout} s: stopped the agent (pid ${outcome.pid}), cancelling what still ran, in ${took.toFixed(1)} s.`);
      return;
    }
    const { pidFileFor } = await import("../lib/agent-paths.js");
    const { stopAgent } = await import("../lib/pid.js");
    const pidFile = await pidFileFor(flags.config);
    const outcome = await stopAgent(pidFile, (flags.timeout ?? 30) * 1000);
    const took = seconds(outcome.waitedMs);
    if (flags.json) this.printJson({ pid: outcome.pid, stopped: true, seconds: took });
    else this.out(`Stopped the agent (pid ${outcome.pid}) in ${took.toFixed(1)} s.`);
  }
}
