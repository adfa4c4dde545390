/**
 * Commands answered without loading oclif, whose own start-up is most of a
 * short command's run time (~140 ms of ~330 ms for `status`). Only exactly
 * these argument forms take this path; anything else (help, an unknown or a
 * repeated flag) goes to oclif, which parses and reports as always.
 */

export interface FastStatus {
  json: boolean;
  config: string | undefined;
}

/** `status [--json] [--config PATH | -c PATH | --config=PATH]`, else undefined. */
export function parseFastStatus(argv: readonly string[], env: NodeJS.ProcessEnv): FastStatus | undefined {
  if (argv[0] !== "status") return undefined;
  let json = false;
  let config: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = argv[i + 1];
    if (arg === "--json" && !json) json = true;
    else if ((arg === "--config" || arg === "-c") && config === undefined && next !== undefined && next !== "" && !next.startsWith("-")) {
      config = next;
      i++;
    } else if (arg.startsWith("--config=") && config === undefined && arg.length > "--config=".length) config = arg.slice("--config=".length);
    else return undefined;
  }
  // As oclif's flag does: the environment when the flag is absent.
  const fromEnv = env.KITT_AGENT_CONFIG;
  return { json, config: config ?? (fromEnv !== undefined && fromEnv !== "" ? fromEnv : undefined) };
}

/** Runs a fast-path command and returns its exit code; undefined when argv is not one. */
export async function runFastPath(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number | undefined> {
  const status = parseFastStatus(argv, env);
  if (status === undefined) return undefined;
  const { runStatusCommand } = await import("./status-command.js");
  const write = (stream: NodeJS.WriteStream, text: string) => stream.write(text.endsWith("\n") ? text : `${text}\n`);
  return runStatusCommand(status, {
    out: (text) => write(process.stdout, text),
    note: (text) => write(process.stderr, text),
    json: (value) => write(process.stdout, JSON.stringify(value, null, 2)),
  });
}
