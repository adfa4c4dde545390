import { setFlagsFromString } from "node:v8";

/**
 * V8 flags the daemon sets on itself before it loads the agent: no
 * compilers past the bytecode interpreter (Sparkplug, Maglev, TurboFan) and
 * V8's memory-saving heap policy. Measured with bench/footprint
 * (bench/README.md): the idle daemon's RSS falls by about 13 MiB (the
 * compilers' code pages of the node binary are never touched, no machine
 * code is kept, the young generation stays small). The agent's heavy work is
 * native (HTTP parsing, JSON, file copies, hashing); what it costs is CPU in
 * its own JavaScript: 2-3x on a job printing 100,000 lines at once
 * (bench/logs prints it), while the benchmark never waits on the agent.
 */
export const DEFAULT_DAEMON_V8_FLAGS: readonly string[] = ["--no-opt", "--no-maglev", "--no-sparkplug", "--optimize-for-size"];

/**
 * The flags V8 reads as it goes, so that setting them in a running process
 * is sound; flags V8 reads once at start-up (heap sizes, --jitless) belong on
 * node's command line.
 */
const RUNTIME_FLAGS = new Set(["opt", "maglev", "turbofan", "sparkplug", "optimize-for-size"]);

/**
 * KITT_AGENT_V8_FLAGS: unset means the defaults, `none` (or empty) means
 * V8's own; else the problem in one line. No imports but node:v8: bin/run.js
 * loads this first, before the CLI, so that nothing is compiled with the
 * optimizing compilers before they are turned off (their code pages are
 * part of what the flags save).
 */
export function daemonV8Flags(env: NodeJS.ProcessEnv): { flags: string[] } | { problem: string } {
  const value = env.KITT_AGENT_V8_FLAGS;
  if (value === undefined) return { flags: [...DEFAULT_DAEMON_V8_FLAGS] };
  const words = value.trim().split(/\s+/).filter((w) => w !== "");
  if (words.length === 0 || (words.length === 1 && words[0] === "none")) return { flags: [] };
  for (const word of words) {
    const name = /^--(?:no-)?([a-z][a-z-]*)$/.exec(word.replaceAll("_", "-"))?.[1];
    if (name === undefined || !RUNTIME_FLAGS.has(name)) {
      return {
        problem: `KITT_AGENT_V8_FLAGS: ${JSON.stringify(word)} is not a flag the agent sets at run time (one of --[no-]opt, --[no-]maglev, --[no-]turbofan, --[no-]sparkplug, --[no-]optimize-for-size, or none)`,
      };
    }
  }
  return { flags: words };
}

/** Sets the flags in this process (the daemon's, before the agent loads). */
export function applyV8Flags(flags: readonly string[]): void {
  if (flags.length > 0) setFlagsFromString(flags.join(" "));
}
