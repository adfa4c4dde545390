import type { ServerResponse } from "node:http";

import { type ApiRequest, sendError } from "./http-app.js";

import type { LineEvent, LogEvent } from "@kitt/runner";

import type { JobEnd, JobsApi } from "./jobs-api.js";

export interface SseOptions {
  keepaliveMs: number;
  /**
   * Least time between two writes to one reader (default 50 ms): lines that
   * arrive meanwhile go out together, so 500 readers cost 500 writes per
   * interval, not 500 per line.
   */
  flushIntervalMs?: number;
  /**
   * What all log streams together may send (default: one budget of 16 MiB/s
   * per process): each write waits for its turn on it, so the fan-out's CPU
   * stays bounded however many readers there are, and readers of a flooding
   * job skip lines (`dropped`) instead of taking the CPU the job needs.
   */
  budget?: SendBudget;
  onOpen(): void;
  onClose(): void;
}

/** What all SSE readers together may be sent per second. */
export const DEFAULT_SSE_BYTES_PER_SECOND = 8 * 1024 * 1024;
/** A rate shared by many senders: each reserves its bytes on one timeline and waits its turn. */
export class SendBudget {
  private next = 0;
  constructor(
    readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Milliseconds to wait before sending `bytes`. */
  reserve(bytes: number): number {
    const now = this.now();
    const start = Math.max(now, this.next);
    this.next = start + (bytes * 1000) / this.bytesPerSecond;
    return start - now;
  }
}

const sharedBudget = new SendBudget(DEFAULT_SSE_BYTES_PER_SECOND);

/** A batch this large means the job is chatty: the reader does not wait for more before its next one. */
const FULL_BATCH = 250;
/** Each line is encoded once, however many readers send it (the stream shares one event object per line). */
const encoded = new WeakMap<LineEvent, string>();

function sseEvent(commandId: string, event: LogEvent<JobEnd>): string {
  if (event.type === "line") {
    let text = encoded.get(event);
    if (text === undefined) {
      text = `id: ${event.seq}\nevent: log\ndata: ${JSON.stringify({ command_id: commandId, line: event.line })}\n\n`;
      encoded.set(event, text);
    }
    return text;
  }
  if (event.type === "dropped") return `event: dropped\ndata: ${JSON.stringify({ command_id: commandId, count: event.count })}\n\n`;
  const end = event.info;
  const body = {
    command_id: commandId,
    status: end.status,
    ...(end.error !== undefined ? { error: end.error } : {}),
    ...(end.resultData !== undefined ? { result_data: end.resultData } : {}),
  };
  return `event: end\ndata: ${JSON.stringify(body)}\n\n`;
}

function lastEventId(req: ApiRequest): number {
  const raw = req.header("last-event-id") ?? req.query.get("lastEventId") ?? undefined;
  const n = raw === undefined ? 0 : Number(raw);
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

/**
 * `GET /api/logs/:commandId`: the buffered lines, then live ones, each with
 * `id: <seq>` so a client that reconnects with Last-Event-ID continues where
 * it stopped; `: keepalive` comments while idle; an `end` event with the
 * outcome, then the response ends. A slow client never slows the job: it
 * reads from the job's ring when its socket is ready, skipping ahead (a
 * `dropped` event says how many lines) when it falls too far behind; and
 * lines are sent in batches at most every `flushIntervalMs`.
 */
export async function streamLogs(req: ApiRequest, res: ServerResponse, jobs: JobsApi, id: string, options: SseOptions): Promise<void> {
  const stream = jobs.logs(id);
  // A test id names its latest job: events carry that job's command id.
  const commandId = jobs.logsCommandId?.(id) ?? id;
  if (stream === undefined) {
    sendError(res, 404, `no logs for command ${commandId}`);
    return;
  }
  res.statusCode = 200;
  res.setHeader("Content-Type", "text/event-stream; charset=utf-8");
  res.setHeader("Cache-Control", "no-cache, no-transform");
  res.setHeader("Connection", "keep-alive");
  res.setHeader("X-Accel-Buffering", "no");
  res.flushHeaders();
  res.write("retry: 2000\n\n");

  const sub = stream.subscribe({ afterSeq: lastEventId(req) });
  let open = true;
  options.onOpen();
  const keepalive = setInterval(() => {
    if (open) res.write(": keepalive\n\n");
  }, options.keepaliveMs);
  keepalive.unref();
  const close = () => {
    if (!open) return;
    open = false;
    clearInterval(keepalive);
    sub.close();
    options.onClose();
  };
  res.on("close", close);

  const flushIntervalMs = options.flushIntervalMs ?? 50;
  const budget = options.budget ?? sharedBudget;
  try {
    for (;;) {
      const events = await sub.nextBatch();
      if (events.length === 0 || !open) break;
      const parts = events.map((event) => sseEvent(commandId, event));
      const waitMs = budget.reserve(parts.reduce((n, p) => n + p.length, 0));
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs).unref());
      if (!open) break;
      const chunk = parts.join("");
      // Wait for the socket to drain rather than buffering without bound.
      if (!res.write(chunk)) await new Promise<void>((resolve) => res.once("drain", resolve).once("close", resolve));
      if (events.at(-1)?.type === "end") break;
      // A trickle waits (a little) to go out with what follows.
      if (events.length < FULL_BATCH) await sub.settle(FULL_BATCH, flushIntervalMs);
    }
  } finally {
    close();
    res.end();
  }
}
