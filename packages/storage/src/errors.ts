import { KittError, UsageError } from "@kitt/protocol";

/**
 * Codes callers branch on. Every message is one line naming the path and what
 * was tried, fit to show as the job's failure reason.
 */
export type StorageErrorCode =
  | "MODEL_NOT_FOUND"
  | "MODEL_OUTSIDE_SHARE"
  | "MODEL_AMBIGUOUS"
  | "NO_SPACE"
  | "STAGING_CANCELLED"
  | "STAGING_FAILED"
  | "CLEANUP_REFUSED"
  | "MODEL_IN_USE";

/** A staging, lookup or cleanup failure. */
export class StorageError extends KittError {
  declare readonly code: StorageErrorCode;

  constructor(code: StorageErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { code, cause: options.cause });
  }
}

/** A model path or setting that can never be right: the user must change it. */
export class ModelPathError extends UsageError {
  constructor(message: string) {
    super(message, { code: "MODEL_PATH_REFUSED" });
  }
}

/** The node error code of `err`, if it has one (`ENOENT`, `EACCES`, ...). */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** A short reason for logs and messages, without a stack. */
export function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
