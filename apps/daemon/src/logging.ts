import type { Writable } from "node:stream";

import { pino, type Logger as Pino } from "pino";

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

function wrap(p: Pino, redact: (text: string) => string): AgentLogger {
  const emit = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (fields === undefined) p[level](redact(message));
    else p[level](JSON.parse(redact(JSON.stringify(fields))) as Record<string, unknown>, redact(message));
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    child: (bindings) => wrap(p.child(bindings), redact),
    flush: () => p.flush(),
  };
}

/**
 * Structured JSON logs (pino) to stdout for journald and to a size-rotated
 * file (5 MB x 3 by default). Every message and field is scrubbed of the
 * given secrets before it is written. The file is never opened through a
 * symbolic link (a one-line KittError instead).
 */
export function createAgentLogger(options: AgentLoggerOptions): AgentLogger {
  const stdout = options.stdout ?? process.stdout;
  const screen = options.format === "pretty" ? new PrettyLogStream(stdout, options.colour === true) : stdout;
  const streams: { stream: Writable; level: LogLevel }[] = [{ stream: screen, level: options.level }];
  if (options.file !== undefined) {
    const file = options.file;
    // A log file that stops taking lines (disk full) must not stop the agent: say so once, on stdout.
    const onError = (err: Error) =>
      stdout.write(`${JSON.stringify({ level: "error", time: new Date().toISOString(), name: "kitt-agent", msg: `${file}: ${err.message} (every log line still goes to stdout)` })}\n`);
    streams.push({
      stream: new RotatingFile(file, { ...(options.maxFileBytes !== undefined ? { maxBytes: options.maxFileBytes } : {}), ...(options.keepFiles !== undefined ? { keep: options.keepFiles } : {}), onError }),
      level: options.level,
    });
  }
  const p = pino(
    {
      level: options.level,
      base: { name: "kitt-agent" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ["token", "*.token", "authorization", "*.authorization", "headers.authorization"], censor: "***" },
    },
    pino.multistream(streams),
  );
  return wrap(p, redactor(options.secrets ?? []));
}
