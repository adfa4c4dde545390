import type { OutputStream } from "./runtime.js";

/**
 * Splits the Engine API's multiplexed log stream (8-byte frame headers:
 * stream type, 3 zero bytes, big-endian length) into stdout and stderr
 * chunks. Frames may arrive cut anywhere. A stream that does not start with
 * a valid header (a TTY container) is passed through as stdout.
 */
export class Demuxer {
  private pending: Buffer = Buffer.alloc(0);
  private raw = false;

  constructor(private readonly onData: (chunk: Buffer, stream: OutputStream) => void) {}

  push(chunk: Buffer): void {
    if (this.raw) {
      this.onData(chunk, "stdout");
      return;
    }
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (buf.length >= 8) {
      const type = buf[0];
      if ((type !== 0 && type !== 1 && type !== 2) || buf[1] !== 0 || buf[2] !== 0 || buf[3] !== 0) {
        this.raw = true;
        this.pending = Buffer.alloc(0);
        this.onData(buf, "stdout");
        return;
      }
      const length = buf.readUInt32BE(4);
      if (buf.length < 8 + length) break;
      if (length > 0) this.onData(buf.subarray(8, 8 + length), type === 2 ? "stderr" : "stdout");
      buf = buf.subarray(8 + length);
    }
    this.pending = Buffer.from(buf);
  }

  /** Whatever is left of a cut frame (the engine closed mid-frame) goes out as it is. */
  end(): void {
    if (this.pending.length > 8) this.onData(this.pending.subarray(8), this.pending[0] === 2 ? "stderr" : "stdout");
    this.pending = Buffer.alloc(0);
  }
}
