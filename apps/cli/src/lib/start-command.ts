import type { FastStart } from "./fast-path.js";

/**
 * `kitt-agent start`: the daemon in this process, in the foreground, until it
 * stops. The oclif command and the fast path (which spares the daemon
 * oclif's 22 MiB for its whole life) both run this.
 */
export async function runStartCommand(flags: FastStart, note: (text: string) => void): Promise<void> {
  // First: ps, top and ss name the agent kitt-agent from its first moment, not node or MainThread.
  process.title = "kitt-agent";
  // Before the agent's code loads: the lean daemon's V8 flags (KITT_AGENT_V8_FLAGS; bin/run.js set them already).
  const { applyV8Flags, daemonV8Flags } = await import("./v8-flags.js");
  const v8 = daemonV8Flags(process.env);
  if ("problem" in v8) {
    const { UsageError } = await import("@kitt/protocol/errors");
    throw new UsageError(v8.problem);
  }
  const v8Flags = v8.flags;
  applyV8Flags(v8Flags);
  const { loadCliConfig } = await import("./config.js");
  const loaded = await loadCliConfig(flags.config);
  for (const w of loaded.warnings) note(`warning: ${w}`);
  const config = flags.insecure ? { ...loaded.config, insecure: true } : loaded.config;
  if (flags.preflight) {
    const { preflightFromConfig } = await import("./preflight.js");
    const { result, table } = await preflightFromConfig(flags.config, { insecure: flags.insecure });
    if (!result.ok) {
      note(table);
      const { KittError } = await import("@kitt/protocol");
      throw new KittError("preflight failed: not starting (see the checks above)", { code: "PREFLIGHT" });
    }
  }
  const { startAgent } = await import("@kitt/daemon");
  // journald sets JOURNAL_STREAM: JSON there even when someone attached a terminal.
  const tty = process.stdout.isTTY && process.env.JOURNAL_STREAM === undefined;
  const pretty = flags.logFormat === "pretty" || (flags.logFormat === "auto" && tty);
  const agent = await startAgent(config, {
    handleSignals: true,
    logFormat: pretty ? "pretty" : "json",
    logColour: pretty && tty && process.env.NO_COLOR === undefined,
    v8Flags,
  });
  note(`kitt-agent ${config.name} running; local API on ${agent.url} (listening on ${agent.address}; stop with Ctrl-C or kitt-agent stop)`);
  await agent.done;
  // The agent has stopped and closed what it opened; whatever still holds the
  // event loop (a socket a client left open, a library's timer) must not keep a
  // stopped service alive: systemd would wait for TimeoutStopSec and SIGKILL it.
  const linger = setTimeout(() => {
    const left = process.getActiveResourcesInfo().filter((r) => r !== "Timeout");
    note(`kitt-agent stopped; exiting despite open handles (${left.join(", ") || "timers"})`);
    process.exit(process.exitCode ?? 0);
  }, 2000);
  linger.unref();
}
