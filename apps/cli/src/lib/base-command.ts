import { Command, Flags } from "@oclif/core";

/**
 * What every kitt-agent command shares: `--config` and `--debug`, and plain
 * writers (oclif's `log` adds formatting we do not want in JSON output).
 * Keep imports here to @oclif/core only: every command loads this file.
 */
export abstract class BaseCommand extends Command {
  static override baseFlags = {
    config: Flags.string({
      char: "c",
      summary: "Path of agent.yaml.",
      description: "Defaults to ~/.kitt/agent.yaml.",
      env: "KITT_AGENT_CONFIG",
      helpGroup: "GLOBAL",
    }),
    debug: Flags.boolean({
      summary: "Show stack traces and debug details on errors.",
      helpGroup: "GLOBAL",
    }),
  };

  /** One line (or block) to stdout. */
  protected out(text: string): void {
    process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  }

  /** Diagnostics to stderr. */
  protected note(text: string): void {
    process.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
  }

  /** Exactly one JSON document on stdout. */
  protected printJson(value: unknown): void {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  // Errors go up to main(), which owns their rendering and the exit code.
  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    throw err;
  }
}
