import { classifyError, EXIT_OK, renderError } from "./lib/errors.js";

// Builtins through getBuiltinModule: an ESM import of node:fs builds its
// module facade and loads the file streams with it (~3 ms of every command).
const { readFileSync } = process.getBuiltinModule("node:fs");
const { fileURLToPath } = process.getBuiltinModule("node:url");

/** The CLI's root (where package.json is), for oclif. */
const ROOT = fileURLToPath(new URL("..", import.meta.url));

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: unknown };
  return typeof pkg.version === "string" ? pkg.version : "unknown";
}

function wantsDebug(argv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  const dashdash = argv.indexOf("--");
  const flags = dashdash === -1 ? argv : argv.slice(0, dashdash);
  return flags.includes("--debug") || env.KITT_DEBUG === "1";
}

/**
 * Runs one kitt-agent invocation and returns its exit code; the single place
 * where errors become a one-line message (a stack only with --debug, or for a
 * bug) and an exit code: 0 ok, 1 failed, 2 usage.
 */
export async function main(argv: string[]): Promise<number> {
  const debug = wantsDebug(argv, process.env);
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v")) {
    // Answered before oclif loads: the fastest path, and the operator's name for the binary.
    process.stdout.write(`kitt-agent ${version()} (node ${process.version}, ${process.platform}-${process.arch})\n`);
    return EXIT_OK;
  }
  try {
    // The commands run most often skip oclif's own start-up (KITT_AGENT_NO_FAST_PATH=1: never).
    const fast = process.env.KITT_AGENT_NO_FAST_PATH === "1" ? undefined : await (await import("./lib/fast-path.js")).runFastPath(argv, process.env);
    if (fast !== undefined) return fast;
  } catch (err) {
    const report = classifyError(err);
    process.stderr.write(renderError(report, debug));
    return report.exitCode;
  }
  const { flush, run } = await import("@oclif/core");
  try {
    await run(argv, ROOT);
    await flush();
    return EXIT_OK;
  } catch (err) {
    await flush().catch(() => {});
    const report = classifyError(err);
    process.stderr.write(renderError(report, debug));
    return report.exitCode;
  }
}
