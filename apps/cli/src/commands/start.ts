import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Start extends BaseCommand {
  static override summary = "Run the agent daemon in the foreground.";
  static override description = `Registers with the KITT server, heartbeats, runs the benchmarks it is sent and serves the local API on the configured port, until SIGTERM or Ctrl-C (then it cancels the running job and reports before exiting). This is what the systemd service runs.

Refuses to start when the pid file names a live agent; a stale pid file is replaced.`;

  static override examples = ["<%= config.bin %> start", "<%= config.bin %> start --preflight", "<%= config.bin %> start --log-format json"];

  static override flags = {
    insecure: Flags.boolean({ summary: "Do not verify the server's certificate (development only)." }),
    preflight: Flags.boolean({ summary: "Run the preflight checks first; refuse to start when a required one fails." }),
    "log-format": Flags.string({
      summary: "How log lines go to stdout: readable (pretty) or JSON lines (json); auto: pretty on a terminal, JSON otherwise (systemd, pipes).",
      options: ["auto", "pretty", "json"],
      default: "auto",
    }),
  };

  async run(): Promise<void> {
    // First: ps, top and ss name the agent kitt-agent from its first moment, not node or MainThread.
    process.title = "kitt-agent";
    const { flags } = await this.parse(Start);
    const { loadCliConfig } = await import("../lib/config.js");
    const loaded = await loadCliConfig(flags.config);
    for (const w of loaded.warnings) this.note(`warning: ${w}`);
    const config = flags.insecure ? { ...loaded.config, insecure: true } : loaded.config;
    if (flags.preflight) {
      const { preflightFromConfig } = await import("../lib/preflight.js");
      const { result, table } = await preflightFromConfig(flags.config, { insecure: flags.insecure });
      if (!result.ok) {
        this.note(table);
        const { KittError } = await import("@kitt/protocol");
        throw new KittError("preflight failed: not starting (see the checks above)", { code: "PREFLIGHT" });
      }
    }
    const { startAgent } = await import("@kitt/daemon");
    // journald sets JOURNAL_STREAM: JSON there even when someone attached a terminal.
    const tty = process.stdout.isTTY && process.env.JOURNAL_STREAM === undefined;
    const pretty = flags["log-format"] === "pretty" || (flags["log-format"] === "auto" && tty);
    const agent = await startAgent(config, {
      handleSignals: true,
      logFormat: pretty ? "pretty" : "json",
      logColour: pretty && tty && process.env.NO_COLOR === undefined,
    });
    this.note(`kitt-agent ${config.name} running; local API on ${agent.url} (listening on ${agent.address}; stop with Ctrl-C or kitt-agent stop)`);
    await agent.done;
    // The agent has stopped and closed what it opened; whatever still holds the
    // event loop (a socket a client left open, a library's timer) must not keep a
    // stopped service alive: systemd would wait for TimeoutStopSec and SIGKILL it.
    const linger = setTimeout(() => {
      const left = process.getActiveResourcesInfo().filter((r) => r !== "Timeout");
      this.note(`kitt-agent stopped; exiting despite open handles (${left.join(", ") || "timers"})`);
      process.exit(process.exitCode ?? 0);
    }, 2000);
    linger.unref();
  }
}
