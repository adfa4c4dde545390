import { closeSync, fstatSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { Writable } from "node:stream";

import { ensurePrivateSubdir, openPrivateAppend } from "./state-dir.js";

export interface RotatingFileOptions {
  maxBytes?: number;
  keep?: number;
  /** Told once per distinct failure (disk full, a rotated name that cannot be replaced). */
  onError?: (err: Error) => void;
}

/**
 * An append-only log file that rotates by size: `agent.log` is renamed to
 * `agent.log.1` (and `.1` to `.2`, ...) once it would grow past `maxBytes`,
 * keeping `keep` old files. Writes are synchronous and small (one log line),
 * so a crash loses at most the line being written.
 *
 * The name is predictable, so it is never opened through a symbolic link, as
 * a FIFO, or when another user owns it (the constructor throws a one-line
 * KittError); a fresh file after rotation must be new (O_EXCL). A failing
 * rotation keeps writing the current file; a failing write never stops the
 * agent: the line is dropped here (stdout still has it).
 */
export class RotatingFile extends Writable {
  private fd: number | undefined;
  private size: number;
  private readonly reported = new Set<string>();
  /** Lines that could not be written. */
  droppedLines = 0;
  readonly maxBytes: number;
  readonly keep: number;

  constructor(
    readonly path: string,
    options: RotatingFileOptions = {},
  ) {
    super({ decodeStrings: true });
    this.maxBytes = options.maxBytes ?? 5 * 1024 * 1024;
    this.keep = options.keep ?? 3;
    this.onError = options.onError;
    ensurePrivateSubdir(dirname(path));
    this.fd = openPrivateAppend(path);
    this.size = fstatSync(this.fd).size;
  }

  private readonly onError: ((err: Error) => void) | undefined;

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    try {
      if (this.fd === undefined) this.reopen(false);
      if (this.size > 0 && this.size + chunk.length > this.maxBytes) {
        try {
          this.rotate();
        } catch (err) {
          // The line still goes in: a log past its size beats a lost line.
          this.report(err as Error);
          if (this.fd === undefined) this.reopen(false);
        }
      }
      writeSync(this.fd as number, chunk);
      this.size += chunk.length;
    } catch (err) {
      this.droppedLines++;
      this.report(err as Error);
    }
    cb();
  }

  /** Each distinct failure is told once: a full disk must not become a line per line. */
  private report(err: Error): void {
    if (this.reported.has(err.message) || this.reported.size >= 16) return;
    this.reported.add(err.message);
    this.onError?.(err);
  }

  override _final(cb: (err?: Error | null) => void): void {
    try {
      if (this.fd !== undefined) closeSync(this.fd);
      this.fd = undefined;
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  private reopen(exclusive: boolean): void {
    this.fd = openPrivateAppend(this.path, { exclusive });
    this.size = fstatSync(this.fd).size;
  }

  private rotate(): void {
    closeSync(this.fd as number);
    this.fd = undefined;
    // rm and rename act on the names themselves: a planted link is replaced, never followed.
    rmSync(`${this.path}.${this.keep}`, { force: true });
    for (let i = this.keep - 1; i >= 1; i--) {
      try {
        renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch {
        // that generation does not exist yet
      }
    }
    renameSync(this.path, `${this.path}.1`);
    this.reopen(true);
  }
}
