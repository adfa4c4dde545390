import { KittError, UsageError } from "@kitt/protocol";

/** Codes callers branch on; every message is one line fit to show as a command's failure reason. */
export type EngineErrorCode =
  | "ENGINE_UNKNOWN"
  | "ENGINE_NOT_INSTALLED"
  | "ENGINE_NOT_RUNNING"
  | "ENGINE_PORT_IN_USE"
  | "ENGINE_START_FAILED"
  | "ENGINE_NOT_READY"
  | "ENGINE_STOP_FAILED"
  | "ENGINE_INSTALL_FAILED"
  | "ENGINE_CANCELLED";

/** An engine operation that failed; `lastLines` holds the engine's last output lines when there are any. */
export class EngineError extends KittError {
  declare readonly code: EngineErrorCode;
  readonly lastLines: readonly string[];

  constructor(code: EngineErrorCode, message: string, options: { cause?: unknown; lastLines?: readonly string[] } = {}) {
    super(message, { code, cause: options.cause });
    this.lastLines = options.lastLines ?? [];
  }
}

/** A runtime_config value (or engine option) that can never work: the operator must change it. */
export class EngineConfigError extends UsageError {
  /** The offending runtime_config key. */
  readonly key: string;

  constructor(key: string, message: string) {
    super(message, { code: "ENGINE_CONFIG" });
    this.key = key;
  }
}

/** A short reason for logs and messages, without a stack. */
export function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
