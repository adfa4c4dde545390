/**
 * The logger every library takes. Libraries never print: they call this.
 * `fields` carries structured context; it must never carry secrets.
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A logger that drops everything: the default where none is given. */
export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface RecordedLog {
  level: LogLevel;
  message: string;
  fields: Record<string, unknown> | undefined;
}

/** A logger that keeps what it is told, for tests and for `--json` output. */
export class MemoryLogger implements Logger {
  readonly records: RecordedLog[] = [];

  debug(message: string, fields?: Record<string, unknown>): void {
    this.records.push({ level: "debug", message, fields });
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.records.push({ level: "info", message, fields });
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.records.push({ level: "warn", message, fields });
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.records.push({ level: "error", message, fields });
  }

  /** Everything recorded, one line per record, fields as JSON. */
  text(): string {
    return this.records
      .map((r) => `${r.level} ${r.message}${r.fields ? " " + JSON.stringify(r.fields) : ""}`)
      .join("\n");
  }
}
