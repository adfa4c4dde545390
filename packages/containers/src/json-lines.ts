import type { Readable } from "node:stream";

/** A progress message of the Engine API (pull, build): one JSON object per line. */
export type EngineMessage = Record<string, unknown>;

/** A line of progress output longer than this is not JSON the agent cares about. */
const MAX_LINE = 1024 * 1024;

/**
 * Reads a stream of newline-separated JSON objects, calling `onMessage` for
 * each. `onMessage` may throw to stop (the stream is destroyed and the error
 * rethrown). Lines that are not JSON objects are skipped.
 */
export async function readJsonLines(stream: Readable, onMessage: (msg: EngineMessage) => void, signal?: AbortSignal): Promise<void> {
  let rest = "";
  const handle = (line: string) => {
    const text = line.trim();
    if (text === "" || text.length > MAX_LINE) return;
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg !== null && typeof msg === "object" && !Array.isArray(msg)) onMessage(msg as EngineMessage);
  };
  const onAbort = () => stream.destroy(new Error("aborted"));
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const chunk of stream) {
      rest += typeof chunk === "string" ? chunk : (chunk as Buffer).toString("utf8");
      const lines = rest.split("\n");
      rest = lines.pop() ?? "";
      if (rest.length > MAX_LINE) rest = "";
      for (const line of lines) handle(line);
    }
    handle(rest);
  } catch (err) {
    stream.destroy();
    if (signal?.aborted === true) throw signal.reason instanceof Error ? signal.reason : new Error("aborted", { cause: err });
    throw err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
