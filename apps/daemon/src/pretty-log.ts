import { Writable } from "node:stream";

/** Fields every record has, shown in the line's own columns or not at all. */
const FRAMED = new Set(["level", "time", "name", "msg", "component", "pid", "hostname"]);
const COLOURS: Record<string, string> = { debug: "\x1b[90m", info: "\x1b[32m", warn: "\x1b[33m", error: "\x1b[31m", fatal: "\x1b[31m" };
const RESET = "\x1b[0m";

/**
 * One JSON log record (the shape pino writes) as a line a person reads on a terminal:
 * `17:05:01.123 INFO  runner: job 3f2a... started: host pid 4242  key=value`.
 * A line that is not a JSON object is passed through as it is.
 */
export function prettyLine(json: string, colour = false): string {
  let rec: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(json);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return json;
    rec = parsed as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof rec.time === "string" ? rec.time : typeof rec.time === "number" ? new Date(rec.time).toISOString() : "";
  const clock = /T(\d\d:\d\d:\d\d(\.\d+)?)/.exec(time)?.[1] ?? time;
  const level = typeof rec.level === "string" ? rec.level : String(rec.level ?? "");
  const tag = level.toUpperCase().padEnd(5);
  const where = typeof rec.component === "string" ? `${rec.component}: ` : "";
  const extra = Object.entries(rec)
    .filter(([k]) => !FRAMED.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  const msg = typeof rec.msg === "string" ? rec.msg : "";
  const shown = colour && COLOURS[level] !== undefined ? `${COLOURS[level]}${tag}${RESET}` : tag;
  return `${clock} ${shown} ${where}${msg}${extra.length > 0 ? `  ${extra.join(" ")}` : ""}`;
}

/** A stream for the JSON log lines that writes each record to `out` as prettyLine() does. */
export class PrettyLogStream extends Writable {
  private pending = "";

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly colour = false,
  ) {
    super({ decodeStrings: false });
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    const text = this.pending + (typeof chunk === "string" ? chunk : chunk.toString("utf8"));
    const lines = text.split("\n");
    this.pending = lines.pop() ?? "";
    if (lines.length > 0) this.out.write(`${lines.map((l) => prettyLine(l, this.colour)).join("\n")}\n`);
    done();
  }

  override _final(done: (error?: Error | null) => void): void {
    if (this.pending !== "") this.out.write(`${prettyLine(this.pending, this.colour)}\n`);
    this.pending = "";
    done();
  }
}
