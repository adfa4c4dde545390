import type { Request, Response } from "express";

import type { JobEnd, JobsApi } from "./jobs-api.js";

export interface SseOptions {
  keepaliveMs: number;
  onOpen(): void;
  onClose(): void;
}

function lastEventId(req: Request): number {
  const raw = req.get("last-event-id") ?? (typeof req.query.lastEventId === "string" ? req.query.lastEventId : undefined);
  const n = raw === undefined ? 0 : Number(raw);
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

/**
 * `GET /api/logs/:commandId`: the buffered lines, then live ones, each with
 * `id: <seq>` so a client that reconnects with Last-Event-ID continues where
 * it stopped; `: keepalive` comments while idle; an `end` event with the
 * outcome, then the response ends. A slow client never slows the job: its
 * subscription drops lines (and a `dropped` event says how many).
 */
export async function streamLogs(req: Request, res: Response, jobs: JobsApi, commandId: string, options: SseOptions): Promise<void> {
  const stream = jobs.logs(commandId);
  if (stream === undefined) {
    res.status(404).json({ error: `no logs for command ${commandId}` });
    return;
  }
  res.status(200);
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

  try {
    for (;;) {
      const event = await sub.next();
      if (event === undefined || !open) break;
      let chunk: string;
      if (event.type === "line") {
        chunk = `id: ${event.seq}\nevent: log\ndata: ${JSON.stringify({ command_id: commandId, line: event.line })}\n\n`;
      } else if (event.type === "dropped") {
        chunk = `event: dropped\ndata: ${JSON.stringify({ command_id: commandId, count: event.count })}\n\n`;
      } else {
        const end: JobEnd = event.info;
        const body = {
          command_id: commandId,
          status: end.status,
          ...(end.error !== undefined ? { error: end.error } : {}),
          ...(end.resultData !== undefined ? { result_data: end.resultData } : {}),
        };
        chunk = `event: end\ndata: ${JSON.stringify(body)}\n\n`;
      }
      // Wait for the socket to drain rather than buffering without bound.
      if (!res.write(chunk)) await new Promise<void>((resolve) => res.once("drain", resolve).once("close", resolve));
      if (event.type === "end") break;
    }
  } finally {
    close();
    res.end();
  }
}
