/**
 * The error taxonomy shared by every @kitt package. Each error has a stable
 * `code` to branch on and a one-line `message` fit to show a user as is.
 */
export class KittError extends Error {
  readonly code: string;

  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? "KITT_ERROR";
  }
}

/** Something the user can fix: a bad flag, a bad config value, a missing file. */
export class UsageError extends KittError {
  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(message, { code: options.code ?? "USAGE", cause: options.cause });
  }
}

/** agent.yaml (or its env overrides) is unreadable or invalid. */
export class ConfigError extends UsageError {
  /** The config file involved, when there is one. */
  readonly file: string | undefined;
  /** The offending field in dotted form (`tls.cert`), when known. */
  readonly field: string | undefined;

  constructor(message: string, options: { file?: string; field?: string; cause?: unknown } = {}) {
    super(message, { code: "CONFIG", cause: options.cause });
    this.file = options.file;
    this.field = options.field;
  }
}

/**
 * A message did not match its schema. `field` names the first offending field
 * as a JSON pointer-ish dotted path (`commands.0.payload.engine_name`).
 */
export class ProtocolError extends KittError {
  readonly schema: string;
  readonly field: string;
  /** What is wrong with the field, e.g. `is required`. */
  readonly detail: string;

  constructor(schema: string, field: string, detail: string) {
    super(`invalid ${schema}: ${field === "" ? "(root)" : field} ${detail}`, { code: "PROTOCOL" });
    this.schema = schema;
    this.field = field;
    this.detail = detail;
  }
}

/** Type guard that also accepts errors from other copies of this package. */
export function isKittError(err: unknown): err is KittError {
  return err instanceof KittError || (err instanceof Error && typeof (err as { code?: unknown }).code === "string" && "name" in err);
}
