import type { AgentConfig } from "@kitt/protocol";
import { KittError } from "@kitt/protocol/errors";

import { daemonTransport } from "./daemon-transport.js";

export { daemonTransport, daemonUrl } from "./daemon-transport.js";

/** Nothing listens on the agent's port. */
export class DaemonNotRunningError extends KittError {
  constructor(url: string, cause?: unknown) {
    super(`the agent daemon is not running (nothing answers on ${url})`, { code: "DAEMON_NOT_RUNNING", cause });
  }
}

export interface DaemonResponse {
  status: number;
  body: unknown;
}

function connectionCode(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === "string" ? cause.code : undefined;
}

/** Over mTLS, the daemon answers only a client that presents tls.cert/tls.key and presents tls.cert itself. */
export type DaemonConfig = Pick<AgentConfig, "port" | "host" | "tls" | "token">;

/**
 * One JSON request to the local daemon's API with the agent token. Throws
 * DaemonNotRunningError when the connection is refused, a KittError on a
 * timeout; HTTP errors are returned, not thrown, so callers can explain them.
 */
export async function daemonRequest(
  config: DaemonConfig,
  method: "GET" | "POST",
  path: string,
  options: { body?: unknown; timeoutMs?: number } = {},
): Promise<DaemonResponse> {
  const transport = daemonTransport(config);
  const base = transport.baseUrl;
  const headers: Record<string, string> = {};
  if (config.token !== "") headers.authorization = `Bearer ${config.token}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  let res: { status: number; text: string };
  try {
    res = await transport.request(`${base}${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
    });
  } catch (err) {
    const code = connectionCode(err);
    if (code === "ECONNREFUSED" || code === "ECONNRESET") throw new DaemonNotRunningError(base, err);
    if ((err as Error).name === "TimeoutError") {
      throw new KittError(`${method} ${base}${path}: the daemon did not answer within ${options.timeoutMs ?? 5000} ms`, {
        code: "DAEMON_TIMEOUT",
        cause: err,
      });
    }
    const cause = (err as { cause?: Error }).cause;
    if (code === "DAEMON_CERT_MISMATCH") throw new KittError(cause?.message ?? code, { code, cause: err });
    const detail = cause?.message !== undefined && code !== undefined && cause.message !== code ? `${code} (${cause.message})` : (code ?? (err as Error).message);
    throw new KittError(`${method} ${base}${path} failed: ${detail}`, { code: "DAEMON_REQUEST", cause: err });
  }
  const { text } = res;
  let body: unknown = text;
  try {
    body = text === "" ? {} : (JSON.parse(text) as unknown);
  } catch {
    // not JSON: keep the text for the message
  }
  return { status: res.status, body };
}

/** `{"error": "..."}`'s text, or a short form of whatever came back. */
export function errorText(body: unknown): string {
  if (body !== null && typeof body === "object" && typeof (body as { error?: unknown }).error === "string") {
    return (body as { error: string }).error;
  }
  return typeof body === "string" ? body.slice(0, 200) : JSON.stringify(body).slice(0, 200);
}
