/** Exit codes of every kitt-agent command. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export interface ErrorReport {
  exitCode: number;
  /** One line for stderr. */
  message: string;
  /** Printed only with --debug, or always for a bug (an error nobody anticipated). */
  stack: string | undefined;
  /** True when the error is not one of ours or oclif's: a bug worth a stack trace. */
  bug: boolean;
}

interface OclifErrorShape {
  oclif?: { exit?: number };
  code?: unknown;
  skipOclifErrorHandling?: boolean;
}

/** True when a class named UsageError is among the error's ancestors (also for another copy of @kitt/protocol). */
function isUsageError(err: Error): boolean {
  for (let proto: unknown = Object.getPrototypeOf(err); proto !== null && proto !== Error.prototype; proto = Object.getPrototypeOf(proto)) {
    if ((proto as { constructor?: { name?: string } }).constructor?.name === "UsageError") return true;
  }
  return false;
}

function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, "");
}

/**
 * oclif's parse errors span lines ("Parsing --port", a tab-indented reason,
 * "See more help with --help"): the useful lines joined into one.
 */
function oclifLine(text: string): string {
  const lines = stripAnsi(text)
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^See more help with/.test(l) && !/^The following errors? occurred:?$/.test(l));
  return lines.reduce((acc, l) => (acc === "" ? l : `${acc}${acc.endsWith(":") ? " " : ": "}${l}`), "").replace(/\s{2,}/g, " ");
}

function firstLine(text: string): string {
  const line = text.split("\n").find((l) => l.trim() !== "") ?? text;
  // oclif and some libraries wrap messages in ANSI colours; the terminal may not be one.
  // eslint-disable-next-line no-control-regex
  return line.replace(/\u001b\[[0-9;]*m/g, "").trim();
}

/**
 * Maps anything a command threw to an exit code and one line:
 * - oclif's exit() (EEXIT) -> its code, no message;
 * - oclif parse errors (unknown flag, bad value, missing argument) and an
 *   unknown command -> 2;
 * - a UsageError / ConfigError (code USAGE/CONFIG, or a name ending in
 *   UsageError) -> 2;
 * - any other KittError-like error (an Error with a string `code`) -> 1;
 * - anything else is a bug -> 1 with the stack.
 */
export function classifyError(err: unknown): ErrorReport {
  if (!(err instanceof Error)) {
    return { exitCode: EXIT_FAILED, message: `unexpected failure: ${String(err)}`, stack: undefined, bug: true };
  }
  const shape = err as Error & OclifErrorShape;
  if (shape.oclif !== undefined && /^EEXIT: \d+$/.test(err.message)) {
    return { exitCode: shape.oclif.exit ?? EXIT_FAILED, message: "", stack: err.stack, bug: false };
  }
  if (shape.oclif !== undefined) {
    // Parse errors and "command not found" are the user's to fix.
    const code = shape.oclif.exit;
    const exitCode = code === undefined || code === 2 || code === 127 ? EXIT_USAGE : code;
    return { exitCode, message: oclifLine(err.message), stack: err.stack, bug: false };
  }
  if (typeof shape.code === "string") {
    const usage = shape.code === "USAGE" || shape.code === "CONFIG" || isUsageError(err);
    return { exitCode: usage ? EXIT_USAGE : EXIT_FAILED, message: firstLine(err.message), stack: err.stack, bug: false };
  }
  return { exitCode: EXIT_FAILED, message: `unexpected error: ${firstLine(err.message)}`, stack: err.stack, bug: true };
}

/** What goes to stderr for a report. */
export function renderError(report: ErrorReport, debug: boolean): string {
  if (report.message === "") return "";
  const lines = [`Error: ${report.message}`];
  if ((debug || report.bug) && report.stack !== undefined) lines.push(report.stack);
  if (report.bug && !debug) lines.push("This is a bug in kitt-agent; please report it with the lines above.");
  return `${lines.join("\n")}\n`;
}
