import type * as StatusCommand from "./status-command.js";

// Not an ESM import of node:fs, whose module facade loads the file streams (see main.ts).
const { readFileSync } = process.getBuiltinModule("node:fs");

/**
 * Commands answered without loading oclif, whose own start-up is most of a
 * short command's run time (~140 ms of ~330 ms for `status`) and, for
 * `start`, 22 MiB of the daemon's resident memory for as long as it runs.
 * Only exactly these argument forms take this path, and help pages oclif
 * rendered at build time; anything else (an unknown or a repeated flag, a bad
 * value, --debug) goes to oclif, which parses and reports as always.
 */

interface FastSpec {
  /** Boolean flags (`--name`). */
  booleans: readonly string[];
  /** Flags with a value (`--name V`, `--name=V`), with the values allowed (none: any). */
  values: Readonly<Record<string, readonly string[] | undefined>>;
}

type FastFlags = { config: string | undefined } & Record<string, boolean | string | undefined>;

/**
 * `COMMAND [--bool] [--name VALUE | --name=VALUE] [--config PATH | -c PATH | --config=PATH]`,
 * each flag at most once; else undefined.
 */
function parseFast(argv: readonly string[], command: string, spec: FastSpec, env: NodeJS.ProcessEnv): FastFlags | undefined {
  if (argv[0] !== command) return undefined;
  const flags: FastFlags = { config: undefined };
  const values: Record<string, readonly string[] | undefined> = { config: undefined, ...spec.values };
  const seen = new Set<string>();
  for (let i = 1; i < argv.length; i++) {
    let arg = argv[i] as string;
    if (arg === "-c") arg = "--config";
    if (!arg.startsWith("--")) return undefined;
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (seen.has(name)) return undefined;
    seen.add(name);
    if (spec.booleans.includes(name) && eq === -1) {
      flags[name] = true;
      continue;
    }
    if (!Object.hasOwn(values, name)) return undefined;
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined || value === "" || value.startsWith("-")) return undefined;
    const allowed = values[name];
    if (allowed !== undefined && !allowed.includes(value)) return undefined;
    flags[name] = value;
  }
  // As oclif's flag does: the environment when the flag is absent.
  const fromEnv = env.KITT_AGENT_CONFIG;
  if (flags.config === undefined && fromEnv !== undefined && fromEnv !== "") flags.config = fromEnv;
  return flags;
}

export interface FastStatus {
  json: boolean;
  config: string | undefined;
}

/** `status [--json] [--config PATH]`, else undefined. */
export function parseFastStatus(argv: readonly string[], env: NodeJS.ProcessEnv): FastStatus | undefined {
  const flags = parseFast(argv, "status", { booleans: ["json"], values: {} }, env);
  return flags === undefined ? undefined : { json: flags.json === true, config: flags.config };
}

export const LOG_FORMATS = ["auto", "pretty", "json"] as const;
export type LogFormatFlag = (typeof LOG_FORMATS)[number];

export interface FastStart {
  config: string | undefined;
  insecure: boolean;
  preflight: boolean;
  logFormat: LogFormatFlag;
}

/** `start [--insecure] [--preflight] [--log-format auto|pretty|json] [--config PATH]`, else undefined. */
export function parseFastStart(argv: readonly string[], env: NodeJS.ProcessEnv): FastStart | undefined {
  const flags = parseFast(argv, "start", { booleans: ["insecure", "preflight"], values: { "log-format": LOG_FORMATS } }, env);
  if (flags === undefined) return undefined;
  return {
    config: flags.config,
    insecure: flags.insecure === true,
    preflight: flags.preflight === true,
    logFormat: (flags["log-format"] as LogFormatFlag | undefined) ?? "auto",
  };
}

/**
 * `[WORDS...] --help` (or `-h`): the page oclif rendered for that command or
 * topic at build time (scripts/render-help.mjs, dist/help.json, 80 columns),
 * with this process's platform and Node version; undefined when there is no
 * such page (oclif then answers, e.g. with its "did you mean").
 */
export function fastHelpPage(argv: readonly string[], pagesFile: URL = new URL("../help.json", import.meta.url)): string | undefined {
  const last = argv.at(-1);
  if (last !== "--help" && last !== "-h") return undefined;
  const words = argv.slice(0, -1);
  if (words.some((w) => w.startsWith("-"))) return undefined;
  let pages: unknown;
  try {
    pages = (JSON.parse(readFileSync(pagesFile, "utf8")) as { pages?: unknown }).pages;
  } catch {
    return undefined;
  }
  if (pages === null || typeof pages !== "object") return undefined;
  const page = (pages as Record<string, unknown>)[words.join(" ")];
  if (typeof page !== "string" || !Object.hasOwn(pages, words.join(" "))) return undefined;
  return page.split("{{platform}}").join(`${process.platform}-${process.arch} node-${process.version}`);
}

const STATUS_BUNDLE = "./status-bundle.js";
type StatusModule = typeof StatusCommand;

/** Runs a fast-path command and returns its exit code; undefined when argv is not one. */
export async function runFastPath(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number | undefined> {
  const write = (stream: NodeJS.WriteStream, text: string) => stream.write(text.endsWith("\n") ? text : `${text}\n`);
  const note = (text: string) => write(process.stderr, text);
  const status = parseFastStatus(argv, env);
  if (status !== undefined) {
    // status-command.js and what it imports, bundled at build time into one module (scripts/bundle-status.mjs).
    const { runStatusCommand } = (await import(STATUS_BUNDLE)) as StatusModule;
    return runStatusCommand(status, {
      out: (text) => write(process.stdout, text),
      note,
      json: (value) => write(process.stdout, JSON.stringify(value, null, 2)),
    });
  }
  const help = fastHelpPage(argv);
  if (help !== undefined) {
    process.stdout.write(help);
    return 0;
  }
  const start = parseFastStart(argv, env);
  if (start !== undefined) {
    const { runStartCommand } = await import("./start-command.js");
    await runStartCommand(start, note);
    return 0;
  }
  return undefined;
}
