import type { Writable } from "node:stream";

import type { LogLevel, Logger } from "@kitt/protocol";

import { PrettyLogStream } from "./pretty-log.js";
import { RotatingFile } from "./rotating-file.js";

export interface AgentLoggerOptions {
  level: LogLevel;
  /** Rotating log file (`~/.kitt/logs/agent.log`); none when undefined. */
  file?: string;
  /** Defaults to stdout (journald reads it). */
  stdout?: Writable;
  /**
   * What goes to stdout: JSON lines (default; journald and log shippers) or
   * readable lines for a person at a terminal (time, level, message). The
   * file always gets JSON.
   */
  format?: LogFormat;
  /** Colour the level in pretty lines (a terminal that wants it). */
  colour?: boolean;
  /** Strings that must never reach a log line (the agent token). */
  secrets?: string[];
  maxFileBytes?: number;
  keepFiles?: number;
}

export type LogFormat = "json" | "pretty";

export interface AgentLogger extends Logger {
  child(bindings: Record<string, unknown>): AgentLogger;
  flush(): void;
}

function redactor(secrets: string[]): (text: string) => string {
  const live = secrets.filter((s) => s.length >= 4);
  if (live.length === 0) return (text) => text;
  return (text) => live.reduce((acc, s) => acc.split(s).join("***"), text);
}

const LEVEL_RANK: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 };
/** Field names whose values never reach a log line, at the top level or one level down (`headers.authorization`). */
const CENSORED = new Set(["token", "authorization"]);

function censor(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (CENSORED.has(key)) out[key] = "***";
    else if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      const inner: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) inner[k] = CENSORED.has(k) ? "***" : v;
      out[key] = inner;
    } else out[key] = value;
  }
  return out;
}

/**
 * One JSON object a line: `level` (its name), `time` (ISO 8601), `name`,
 * the child bindings, the call's fields, `msg`; the shape pino writes, which
 * log shippers and our pretty printer read.
 */
function jsonLogger(streams: Writable[], level: LogLevel, bindings: Record<string, unknown>, redact: (text: string) => string): AgentLogger {
  const threshold = LEVEL_RANK[level];
  const emit = (at: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (LEVEL_RANK[at] < threshold) return;
    const record = { level: at, time: new Date().toISOString(), ...bindings, ...(fields !== undefined ? censor(fields) : {}), msg: message };
    // Errors and other objects become what JSON makes of them; a value JSON cannot hold (a cycle, a BigInt) is said, not thrown.
    let line: string;
    try {
      line = JSON.stringify(record);
    } catch (err) {
      line = JSON.stringify({ level: at, time: record.time, ...bindings, msg: message, log_error: `fields not serialisable: ${(err as Error).message}` });
    }
    const text = `${redact(line)}\n`;
    for (const stream of streams) stream.write(text);
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    child: (more) => jsonLogger(streams, level, { ...bindings, ...censor(more) }, redact),
    // Lines are handed to the streams as they are made: nothing is held here.
    flush: () => {},
  };
}

/**
 * Structured JSON logs to stdout for journald and to a size-rotated
 * file (5 MB x 3 by default). Every message and field is scrubbed of the
 * given secrets before it is written. The file is never opened through a
 * symbolic link (a one-line KittError instead).
 */
export function createAgentLogger(options: AgentLoggerOptions): AgentLogger {
  const stdout = options.stdout ?? process.stdout;
  const screen = options.format === "pretty" ? new PrettyLogStream(stdout, options.colour === true) : stdout;
  const streams: Writable[] = [screen];
  if (options.file !== undefined) {
    const file = options.file;
    // A log file that stops taking lines (disk full) must not stop the agent: say so once, on stdout.
    const onError = (err: Error) =>
      stdout.write(`${JSON.stringify({ level: "error", time: new Date().toISOString(), name: "kitt-agent", msg: `${file}: ${err.message} (every log line still goes to stdout)` })}\n`);
    streams.push(
      new RotatingFile(file, { ...(options.maxFileBytes !== undefined ? { maxBytes: options.maxFileBytes } : {}), ...(options.keepFiles !== undefined ? { keep: options.keepFiles } : {}), onError }),
    );
  }
  return jsonLogger(streams, options.level, { name: "kitt-agent" }, redactor(options.secrets ?? []));
}
