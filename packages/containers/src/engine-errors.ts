/**
 * The engine client's failures in the runtime's terms: nothing answers
 * (ContainerRuntimeUnavailableError, naming the endpoint and the cause) or
 * the engine answered with an error (ContainerRuntimeError, its message and
 * status on one line, the whole text in `engineMessage`).
 */
import { KittError } from "@kitt/protocol";

import type { DockerEndpoint } from "./docker-host.js";
import { EngineAnswerError } from "./engine-client.js";
import type { EngineMessage } from "./json-lines.js";
import { ContainerRuntimeError, ContainerRuntimeUnavailableError } from "./runtime.js";

const CONNECTION_CODES = new Set(["ECONNREFUSED", "ENOENT", "EACCES", "EPERM", "ECONNRESET", "EHOSTUNREACH", "ETIMEDOUT", "ENOTFOUND", "EPIPE", "ENOTSOCK"]);

/** Node's codes for a failed TLS handshake or certificate check. */
const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT)/;

function connectionDetail(code: string): string {
  if (code === "ENOENT") return "no socket (is the Docker engine installed and running?)";
  if (code === "EACCES" || code === "EPERM") return "permission denied on the socket (add the agent's user to the docker group)";
  if (code === "ECONNREFUSED") return "connection refused (is the Docker engine running?)";
  return code;
}

/** An `error` line inside a pull's or build's progress stream, as our error (its `errorDetail.message` when whole). */
export function streamError(what: string, msg: EngineMessage): ContainerRuntimeError | undefined {
  const detail = msg.errorDetail as { message?: unknown } | undefined;
  const text = typeof detail?.message === "string" ? detail.message : typeof msg.error === "string" ? msg.error : undefined;
  if (text === undefined) return undefined;
  return new ContainerRuntimeError(what, text.split("\n")[0]?.trim() ?? "", undefined, undefined, text);
}

export function runtimeError(endpoint: DockerEndpoint, what: string, err: unknown, callTimeoutMs: number): Error {
  if (err instanceof KittError) return err;
  if (err instanceof EngineAnswerError) {
    const first = err.engineMessage.split("\n")[0]?.trim() ?? "";
    return new ContainerRuntimeError(what, `${first} (HTTP ${err.statusCode})`, err.statusCode, err, err.engineMessage);
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (endpoint.kind === "tcp" && endpoint.tls && typeof code === "string" && (code === "ECONNRESET" || TLS_CODE.test(code))) {
    // A client certificate the engine refuses shows as a reset (TLS 1.3) or an alert.
    const why = code === "ECONNRESET" ? "the engine closed the connection" : ((err as Error).message.split("\n")[0] ?? code);
    return new ContainerRuntimeUnavailableError(endpoint.display, `TLS: ${why} (are ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH the engine's?)`, err);
  }
  if (typeof code === "string" && CONNECTION_CODES.has(code)) return new ContainerRuntimeUnavailableError(endpoint.display, connectionDetail(code), err);
  if (code === "TIMEOUT") return new ContainerRuntimeUnavailableError(endpoint.display, `no answer to ${what} within ${callTimeoutMs} ms`, err);
  const text = err instanceof Error ? err.message : String(err);
  return new ContainerRuntimeError(what, text.split("\n")[0]?.trim() ?? "", undefined, err);
}
