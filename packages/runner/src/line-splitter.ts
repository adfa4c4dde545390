import { StringDecoder } from "node:string_decoder";

/** Lines longer than this are cut: one runaway line must not eat the agent's memory. */
export const DEFAULT_MAX_LINE_CHARS = 64 * 1024;

export interface LineSplitterOptions {
  maxLineChars?: number;
}

/**
 * Turns a byte stream into lines. `\n`, `\r\n` and a lone `\r` each end a
 * line: progress bars redraw themselves with `\r`, and without this rule a
 * whole download would arrive as one giant line at the very end. A line
 * longer than the cap is emitted cut, with a marker saying how much was
 * left out, and the rest of it is skipped up to the next line end.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder("utf8");
  private readonly maxChars: number;
  private readonly emit: (line: string) => void;
  private current = "";
  /** Characters skipped from the current line once it went over the cap. */
  private skipped = 0;
  /** The previous chunk ended with `\r`: a `\n` starting the next one belongs to it. */
  private pendingCr = false;

  constructor(emit: (line: string) => void, options: LineSplitterOptions = {}) {
    this.emit = emit;
    this.maxChars = Math.max(1, options.maxLineChars ?? DEFAULT_MAX_LINE_CHARS);
  }

  push(chunk: Buffer | string): void {
    this.feed(typeof chunk === "string" ? chunk : this.decoder.write(chunk));
  }

  /** Emits whatever is left (a last line without a newline). */
  end(): void {
    this.feed(this.decoder.end());
    if (this.current !== "" || this.skipped > 0) this.finishLine();
    this.pendingCr = false;
  }

  private feed(text: string): void {
    let start = 0;
    if (this.pendingCr && text.startsWith("\n")) start = 1;
    this.pendingCr = false;
    // indexOf is native and fast; a char-by-char loop costs more than the rest of the line's trip.
    let nl = text.indexOf("\n", start);
    let cr = text.indexOf("\r", start);
    while (nl !== -1 || cr !== -1) {
      const end = nl === -1 ? cr : cr === -1 ? nl : Math.min(nl, cr);
      this.append(text.slice(start, end));
      this.finishLine();
      start = end + 1;
      if (end === cr) {
        if (start < text.length) {
          if (text.charCodeAt(start) === 10) start++;
        } else {
          this.pendingCr = true;
        }
        cr = text.indexOf("\r", start);
      }
      if (nl !== -1 && nl < start) nl = text.indexOf("\n", start);
    }
    if (start < text.length) this.append(text.slice(start));
  }

  private append(part: string): void {
    if (part === "") return;
    if (this.skipped > 0) {
      this.skipped += part.length;
      return;
    }
    const room = this.maxChars - this.current.length;
    if (part.length <= room) {
      this.current += part;
      return;
    }
    this.current += part.slice(0, room);
    this.skipped = part.length - room;
  }

  private finishLine(): void {
    const line = this.skipped > 0 ? `${this.current} [... line cut: ${this.skipped} more characters]` : this.current;
    this.current = "";
    this.skipped = 0;
    this.emit(line);
  }
}
