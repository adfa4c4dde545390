import { KittError, UsageError } from "@kitt/protocol";

export interface JobEndEvent {
  status: string;
  error?: string;
}

export interface LogStreamOptions {
  /** http(s)://127.0.0.1:<port> */
  baseUrl: string;
  token: string;
  commandId: string;
  /** Keep streaming until the job ends, reconnecting after drops. Without it: what is buffered now. */
  follow: boolean;
  onLine: (line: string) => void;
  /** Reconnects, dropped-line counts: for stderr. */
  onNotice?: (text: string) => void;
  /** Without --follow: stop once nothing arrived for this long (the buffered lines come at once). */
  idleMs?: number;
  /** Cap on the wait before a reconnect (the server's `retry:` is honoured up to it). */
  maxRetryMs?: number;
  /** Consecutive failed connects before giving up. */
  maxReconnects?: number;
  sleep?: (ms: number) => Promise<void>;
  fetch?: typeof fetch;
}

export interface LogStreamResult {
  lines: number;
  /** The job's outcome when the stream said it ended. */
  end: JobEndEvent | undefined;
  reconnects: number;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Reads a job's log from the daemon's SSE endpoint (eventsource-parser), each
 * `log` event's line once: after a dropped connection it reconnects with
 * Last-Event-ID, so the daemon resumes after the last line seen.
 */
export async function streamJobLogs(options: LogStreamOptions): Promise<LogStreamResult> {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(options.commandId)) throw new UsageError(`invalid command id ${JSON.stringify(options.commandId)}`);
  const { createParser } = await import("eventsource-parser");
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? defaultSleep;
  const idleMs = options.idleMs ?? 400;
  const maxReconnects = options.maxReconnects ?? 10;
  let lastId: string | undefined;
  let retryMs = Math.min(1000, options.maxRetryMs ?? 1000);
  let lines = 0;
  let end: JobEndEvent | undefined;
  let reconnects = 0;
  let failures = 0;

  for (;;) {
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (options.token !== "") headers.authorization = `Bearer ${options.token}`;
    if (lastId !== undefined) headers["last-event-id"] = lastId;
    const controller = new AbortController();
    let res: Response | undefined;
    try {
      res = await doFetch(`${options.baseUrl}/api/logs/${encodeURIComponent(options.commandId)}`, { headers, signal: controller.signal });
    } catch (err) {
      const code = (err as { cause?: { code?: string } }).cause?.code;
      if (code === "DAEMON_CERT_MISMATCH") throw new KittError((err as { cause: Error }).cause.message, { code, cause: err });
      if (lastId === undefined && reconnects === 0 && code === "ECONNREFUSED") {
        throw new KittError(`the agent daemon is not running (nothing answers on ${options.baseUrl})`, { code: "DAEMON_NOT_RUNNING", cause: err });
      }
      if (!options.follow || ++failures > maxReconnects) {
        throw new KittError(`lost the log stream of ${options.commandId}: ${code ?? (err as Error).message}`, { code: "LOG_STREAM", cause: err });
      }
      options.onNotice?.(`connection failed (${code ?? "error"}); retrying in ${retryMs} ms`);
      await sleep(retryMs);
      continue;
    }
    if (res.status === 404) throw new KittError(`the daemon has no log for command ${options.commandId}`, { code: "NOT_FOUND" });
    if (res.status === 401) throw new KittError("the daemon refused the token in agent.yaml (HTTP 401)", { code: "UNAUTHORIZED" });
    if (res.status !== 200 || res.body === null) throw new KittError(`GET /api/logs/${options.commandId} answered HTTP ${res.status}`, { code: "LOG_STREAM" });
    failures = 0;

    const parser = createParser({
      onEvent: (event) => {
        if (event.id !== undefined && event.id !== "") lastId = event.id;
        if (event.event === "log") {
          try {
            const data = JSON.parse(event.data) as { line?: unknown };
            if (typeof data.line === "string") {
              lines++;
              options.onLine(data.line);
            }
          } catch {
            options.onNotice?.("skipped an unreadable log event");
          }
        } else if (event.event === "dropped") {
          const count = (JSON.parse(event.data) as { count?: unknown }).count;
          options.onNotice?.(`the daemon dropped ${String(count)} lines for this slow reader`);
        } else if (event.event === "end") {
          end = JSON.parse(event.data) as JobEndEvent;
        }
      },
      onRetry: (ms) => {
        retryMs = Math.max(100, Math.min(ms, options.maxRetryMs ?? 1000));
      },
    });

    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    const armIdle = (): void => {
      if (options.follow) return;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => controller.abort(), idleMs);
    };
    let dropped = false;
    try {
      armIdle();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(value);
        if (end !== undefined) break;
        armIdle();
      }
    } catch {
      // Our own abort is the idle stop; anything else is the connection breaking.
      if (!controller.signal.aborted) dropped = true;
    } finally {
      clearTimeout(idleTimer);
      controller.abort();
    }
    if (end !== undefined || !options.follow) return { lines, end, reconnects };
    // The stream ended or broke before the job did: resume after the last line seen.
    reconnects++;
    options.onNotice?.(`log stream ${dropped ? "dropped" : "closed"}; reconnecting${lastId === undefined ? "" : ` after event ${lastId}`}`);
    await sleep(retryMs);
  }
}
