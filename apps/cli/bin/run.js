#!/usr/bin/env node
// The kitt-agent entry point: everything, including the exit code, is decided in dist/main.js.
// `start` first sets the daemon's V8 flags (dist/lib/v8-flags.js), before any other code loads;
// a bad KITT_AGENT_V8_FLAGS is reported by the start command itself.
if (process.argv[2] === "start") {
  const { applyV8Flags, daemonV8Flags } = await import("../dist/lib/v8-flags.js");
  const v8 = daemonV8Flags(process.env);
  if ("flags" in v8) applyV8Flags(v8.flags);
}
const { main } = await import("../dist/main.js");

process.exitCode = await main(process.argv.slice(2));
