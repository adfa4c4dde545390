import { connect } from "node:net";

export type FetchLike = (url: string, init: { signal: AbortSignal }) => Promise<{ ok: boolean; status: number; body?: unknown }>;

/** True when GET `url` answers 2xx within `timeoutMs`; any error or other status is "not yet". */
export async function probeReady(fetchFn: FetchLike, url: string, timeoutMs: number): Promise<boolean> {
  try {
    const response = await fetchFn(url, { signal: AbortSignal.timeout(timeoutMs) });
    // Drain so the connection is released at once.
    await (response as unknown as { arrayBuffer?: () => Promise<unknown> }).arrayBuffer?.().catch(() => undefined);
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * True when something already accepts connections on 127.0.0.1:`port`. Checked
 * before a start, or the readiness probe would take a stranger for our engine.
 */
export function portInUse(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    const done = (used: boolean): void => {
      socket.destroy();
      resolve(used);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
