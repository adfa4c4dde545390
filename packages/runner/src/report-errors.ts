import { ConnectionError, KittError, ServerError } from "@kitt/protocol";

/**
 * What to do after a failed delivery to the server:
 * - `retry`: the server is away or busy (connection errors, 408, 429, 5xx);
 * - `auth`: 401/403, which more attempts will not fix (e.g. a server running
 *   with an admin token rejects agent tokens on the quick-test routes);
 * - `reject`: the server refused this message for good (400, 404, or it
 *   failed our own validation): keep it for inspection, move on;
 * - `stopped`: the request was aborted because we are stopping.
 */
export type DeliveryVerdict = "retry" | "auth" | "reject" | "stopped";

export function classifyDeliveryError(err: unknown): DeliveryVerdict {
  if (err instanceof ServerError) {
    if (err.status === 401 || err.status === 403) return "auth";
    if (err.status === 408 || err.status === 429 || err.status >= 500) return "retry";
    return "reject";
  }
  // Even a TLS failure is retried (slowly): the message must survive until someone fixes it.
  if (err instanceof ConnectionError) return "retry";
  if (err instanceof KittError && err.code === "ABORTED") return "stopped";
  if (err instanceof KittError) return "reject";
  return "retry";
}
