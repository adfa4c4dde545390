import type { IncomingHttpHeaders } from "node:http";

/** One row of the quicktest table, with the fields the real server returns. */
export interface TestRow {
  id: string;
  agent_id: string;
  model_path: string;
  engine_name: string;
  benchmark_name: string;
  suite_name: string;
  status: string;
  command_id: string;
  engine_mode: string;
  profile_id: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  result_id: string | null;
  error: string | null;
}

/** A command exactly as it appears in a heartbeat response. */
export interface Command {
  command_id: string;
  test_id: string;
  type: string;
  payload: Record<string, unknown>;
}

export interface AgentRecord {
  id: string;
  name: string;
  /** null: trust-on-first-use registration without any token. */
  token: string | null;
  provisioned: boolean;
  registration: Record<string, unknown> | null;
  settings: Record<string, string>;
  lastHeartbeat: Record<string, unknown> | null;
}

export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Path with the query string, as sent. */
  url: string;
  /** Headers as received; `authorization` is kept verbatim so tests can check it was sent. */
  headers: IncomingHttpHeaders;
  /** Raw body text (empty when none was sent). */
  body: string;
  /** Subject CN of the client certificate when served over mTLS. */
  clientCertCN: string | null;
  /** The client's port: the same one on several requests means a reused (kept-alive) connection. */
  remotePort: number | null;
  /** The injected fault that answered it, if any. */
  fault: "fail" | "drop" | "flood" | null;
  receivedAt: Date;
}

export interface RecordedRegistration {
  agentId: string;
  body: Record<string, unknown>;
  authorization: string | undefined;
}

export interface RecordedHeartbeat {
  /** Canonical id of the agent the heartbeat resolved to. */
  agentId: string;
  /** The id as it appeared in the URL (decoded): may be the agent name. */
  idInPath: string;
  body: Record<string, unknown>;
  /** Commands handed out in the response (zero or one). */
  commands: Command[];
  /** When the server answered it (ms since the epoch). */
  at: number;
}

export interface RecordedResult {
  agentId: string;
  body: Record<string, unknown>;
}

export interface RecordedStatus {
  status: string;
  error: string | null;
}

export interface LogLine {
  line: string;
  created_at: string;
}

/** Which requests a fault applies to; omitted fields match everything. */
export interface RequestMatch {
  method?: string;
  /** A string matches the path (no query) exactly; a RegExp is tested against it. */
  path?: string | RegExp;
}

/** Options of `failNext`: which requests, and extra response headers (e.g. Retry-After). */
export interface FaultOptions extends RequestMatch {
  headers?: Record<string, string>;
}

/** Passed to `onRequest` once a response has finished (or the socket was dropped). */
export interface RequestLogEntry {
  method: string;
  url: string;
  status: number | null;
  durationMs: number;
  fault: "fail" | "drop" | "flood" | null;
}

export interface FakeServerTlsOptions {
  /** PEM server certificate (chain). */
  cert: string | Buffer;
  /** PEM private key of the server certificate. */
  key: string | Buffer;
  /** PEM CA(s) that client certificates must chain to. */
  ca: string | Buffer;
  /** Ask clients for a certificate. Default true. */
  requestCert?: boolean;
  /** Reject clients without a valid certificate at the TLS layer. Default: same as requestCert. */
  rejectUnauthorized?: boolean;
}

export interface FakeKittServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (an ephemeral port, kept across down()/up()). */
  port?: number;
  /** Serve HTTPS (mTLS by default) instead of HTTP. */
  tls?: FakeServerTlsOptions;
  /** Agents provisioned up front, each bound to its token. */
  agents?: Array<{ name: string; token: string }>;
  /** Admin-token mode: quicktest create/logs/status demand this token instead of agent tokens. */
  adminToken?: string;
  /** Clock for created_at/started_at/completed_at. */
  now?: () => Date;
  /** Called once per request when its response finished (status null: the connection was dropped). */
  onRequest?: (entry: RequestLogEntry) => void;
}

/** A public view of an agent: what a test needs to know about it. */
export interface FakeAgent {
  id: string;
  name: string;
  token: string | null;
  registration: Record<string, unknown> | null;
  settings: Record<string, string>;
}
