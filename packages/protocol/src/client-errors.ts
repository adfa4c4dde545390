import { KittError } from "./errors.js";

/** The server answered with an HTTP error status. */
export class ServerError extends KittError {
  readonly status: number;
  readonly method: string;
  readonly path: string;
  /** The `error` text of the server's body, when it sent one (token redacted). */
  readonly serverMessage: string | undefined;

  constructor(init: { status: number; method: string; path: string; serverMessage?: string }) {
    const what = init.serverMessage ? `: ${init.serverMessage}` : "";
    super(`${init.method} ${init.path} failed with HTTP ${init.status}${what}`, { code: `HTTP_${init.status}` });
    this.status = init.status;
    this.method = init.method;
    this.path = init.path;
    this.serverMessage = init.serverMessage;
  }

  /** 429 and 5xx may succeed later; other statuses will not. */
  get retryable(): boolean {
    return this.status === 429 || this.status >= 500;
  }
}

/** No HTTP answer: refused, reset, timed out, DNS, TLS. `code` is the system's. */
export class ConnectionError extends KittError {
  readonly method: string;
  readonly path: string;
  readonly retryable: boolean;
  /** True when the problem is the TLS handshake (certificates). */
  readonly tls: boolean;

  constructor(init: { method: string; path: string; origin: string; code: string; detail: string; retryable: boolean; tls: boolean }) {
    super(`${init.method} ${init.path} failed: ${init.detail} (${init.code}) talking to ${init.origin}`, { code: init.code });
    this.method = init.method;
    this.path = init.path;
    this.retryable = init.retryable;
    this.tls = init.tls;
  }
}

/** A download (agent package, build context) does not match the server's digest, or no valid digest is published. */
export class IntegrityError extends KittError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: "INTEGRITY", cause: options.cause });
  }
}

const RETRYABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "ERR_STREAM_PREMATURE_CLOSE",
]);

const TLS_DETAILS: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is self-signed (set tls.ca, or --insecure for development)",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's certificate chain ends in an untrusted self-signed CA (set tls.ca)",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's certificate is signed by an unknown CA (set tls.ca)",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the server's certificate is signed by an unknown CA (set tls.ca)",
  CERT_HAS_EXPIRED: "the server's certificate has expired",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's certificate does not match its host name",
};

const DETAILS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "timed out",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EPIPE: "connection closed while sending",
  ERR_STREAM_PREMATURE_CLOSE: "connection closed before the answer ended",
};

/** Classifies a low-level request error code. */
export function describeConnectionCode(code: string, message: string): { detail: string; retryable: boolean; tls: boolean } {
  const tlsDetail = TLS_DETAILS[code];
  if (tlsDetail !== undefined) return { detail: tlsDetail, retryable: false, tls: true };
  if (code.startsWith("ERR_SSL_") || code === "EPROTO" || /alert|certificate/i.test(message)) {
    const alert = /alert ([a-z ]+)/i.exec(message)?.[1];
    return {
      detail: alert ? `TLS handshake rejected (${alert.trim()}): check tls.cert and tls.key` : "TLS handshake failed",
      retryable: false,
      tls: true,
    };
  }
  return { detail: DETAILS[code] ?? message.split("\n")[0] ?? code, retryable: RETRYABLE_CODES.has(code), tls: false };
}
