import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { Writable } from "node:stream";

/**
 * An append-only log file that rotates by size: `agent.log` is renamed to
 * `agent.log.1` (and `.1` to `.2`, ...) once it would grow past `maxBytes`,
 * keeping `keep` old files. Writes are synchronous and small (one log line),
 * so a crash loses at most the line being written.
 */
export class RotatingFile extends Writable {
  private fd: number;
  private size: number;

  constructor(
    readonly path: string,
    readonly maxBytes = 5 * 1024 * 1024,
    readonly keep = 3,
  ) {
    super({ decodeStrings: true });
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.fd = openSync(path, "a", 0o600);
    this.size = fstatSync(this.fd).size;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    try {
      if (this.size > 0 && this.size + chunk.length > this.maxBytes) this.rotate();
      writeSync(this.fd, chunk);
      this.size += chunk.length;
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    try {
      closeSync(this.fd);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  private rotate(): void {
    closeSync(this.fd);
    rmSync(`${this.path}.${this.keep}`, { force: true });
    for (let i = this.keep - 1; i >= 1; i--) {
      try {
        renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch {
        // that generation does not exist yet
      }
    }
    renameSync(this.path, `${this.path}.1`);
    this.fd = openSync(this.path, "a", 0o600);
    this.size = 0;
  }
}
