import { readFile } from "node:fs/promises";
import type { RequestOptions } from "node:https";
import { http, loadHttps, tlsPairProblem } from "@kitt/protocol";

import type { CheckOutcome, PreflightTls } from "./preflight-types.js";
import { formatDuration } from "./units.js";

const MAX_BODY = 64 * 1024;

/** TLS verification failures in words a user can act on. */
function describeTlsError(code: string, host: string): string | undefined {
  switch (code) {
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
      return "TLS: self-signed certificate (use --insecure or set tls.ca)";
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "UNABLE_TO_GET_ISSUER_CERT":
      return "TLS: certificate signed by an unknown CA (set tls.ca to the CA that signed it, or use --insecure)";
    case "CERT_HAS_EXPIRED":
      return "TLS: the server certificate has expired";
    case "CERT_NOT_YET_VALID":
      return "TLS: the server certificate is not valid yet (check the clock)";
    case "INVALID_PURPOSE":
      return "TLS: the server certificate is not issued for TLS servers (a CA certificate served as the server's?)";
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `TLS: the server certificate is not valid for ${host}`;
    case "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED":
      return "TLS: the server requires a client certificate (set tls.cert and tls.key)";
    case "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE":
    case "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA":
    case "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE":
      return "TLS: the server rejected our client certificate (check tls.cert, tls.key and the server's CA)";
    default:
      return code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") ? `TLS: ${code}` : undefined;
  }
}

function describeError(error: NodeJS.ErrnoException, url: URL, timeoutMs: number, clientCert: boolean): string {
  const code = error.code ?? "";
  const tls = describeTlsError(code, url.hostname);
  if (tls !== undefined) return tls;
  const where = url.host;
  if (code === "EPROTO") {
    return /wrong version number/i.test(error.message)
      ? "TLS: the server does not speak HTTPS on this port (try http://)"
      : `TLS: ${error.message}`;
  }
  // With TLS 1.3 a server that refuses the client certificate often just
  // resets the connection after the handshake, without an alert we can read.
  if (code === "ECONNRESET" && url.protocol === "https:") {
    return clientCert
      ? `${where} closed the TLS connection: it may have refused our client certificate (check tls.cert, tls.key and the server's CA)`
      : `${where} closed the TLS connection: it may require a client certificate (set tls.cert and tls.key)`;
  }
  switch (code) {
    case "ECONNREFUSED":
      return `connection refused by ${where}`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `host not found: ${url.hostname}`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `${where} is unreachable`;
    case "ECONNRESET":
      return `${where} closed the connection`;
    case "ETIMEDOUT":
      return `no answer from ${where} within ${formatDuration(timeoutMs)}`;
    default:
      return `${where}: ${error.message}`;
  }
}

async function readTlsFile(field: string, path: string | undefined): Promise<Buffer | undefined | string> {
  if (path === undefined || path === "") return undefined;
  try {
    return await readFile(path);
  } catch (error) {
    return `cannot read tls.${field} (${path}): ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
  }
}

/** The daemon refuses to start with a key that is not tls.cert's (both schemes: its local API serves with the pair too). */
async function tlsPairCheck(tls: PreflightTls): Promise<string | undefined> {
  if (tls.cert === undefined || tls.cert === "" || tls.key === undefined || tls.key === "") return undefined;
  const cert = await readTlsFile("cert", tls.cert);
  const key = await readTlsFile("key", tls.key);
  if (typeof cert === "string") return cert;
  if (typeof key === "string") return key;
  if (cert === undefined || key === undefined) return undefined;
  return tlsPairProblem({ cert, key }, { cert: tls.cert, key: tls.key });
}

type Answer = { status: number; body: unknown } | { detail: string };

/** One request with the check's TLS settings; a failure comes back as words, never thrown. */
function ask(
  url: URL,
  options: RequestOptions,
  timeoutMs: number,
  clientCert: boolean,
  body?: string,
): Promise<Answer> {
  return new Promise<Answer>((resolve) => {
    let settled = false;
    const finish = (answer: Answer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(answer);
    };
    const client = url.protocol === "https:" ? loadHttps() : http;
    const request = client.request(url, options, (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_BODY) chunks.push(chunk);
      });
      response.on("error", (error: NodeJS.ErrnoException) => finish({ detail: describeError(error, url, timeoutMs, clientCert) }));
      response.on("end", () => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          parsed = undefined;
        }
        finish({ status: response.statusCode ?? 0, body: parsed });
      });
    });
    request.on("error", (error: NodeJS.ErrnoException) => finish({ detail: describeError(error, url, timeoutMs, clientCert) }));
    const timer = setTimeout(() => {
      finish({ detail: `no answer from ${url.host} within ${formatDuration(timeoutMs)}` });
      request.destroy();
    }, timeoutMs);
    request.end(body);
  });
}

/** The agent whose token the server check verifies. */
export interface ServerCheckAgent {
  name: string;
  token: string;
}

/**
 * Whether the server accepts `agent.token` for `agent.name`, asked without
 * side effects: POST /api/v1/agents/<name>/results with an empty body. The
 * server authenticates before it reads the body, so 400 ("no result data")
 * means the token was accepted, 401/403 that it was rejected, and 404 that
 * the name is not known yet (the first start registers it with this token).
 * A heartbeat would do too, but it hands out the next queued test.
 */
async function checkToken(base: string, agent: ServerCheckAgent, options: RequestOptions, timeoutMs: number, clientCert: boolean): Promise<CheckOutcome> {
  const url = new URL(`${base}/api/v1/agents/${encodeURIComponent(agent.name)}/results`);
  const answer = await ask(
    url,
    { ...options, method: "POST", headers: { accept: "application/json", "content-type": "application/json", authorization: `Bearer ${agent.token}` } },
    timeoutMs,
    clientCert,
    "{}",
  );
  if ("detail" in answer) return { ok: false, detail: `token check failed: ${answer.detail}` };
  switch (answer.status) {
    case 400:
    case 202:
      return { ok: true, detail: `token accepted for agent ${agent.name}` };
    case 401:
    case 403:
      return { ok: false, detail: `token rejected for agent ${agent.name} (HTTP ${answer.status}): check token in agent.yaml` };
    case 404:
      return { ok: true, detail: `agent ${agent.name} is not registered yet: its first start registers it with this token` };
    default:
      return { ok: false, detail: `token check answered HTTP ${answer.status} (POST ${url.pathname})` };
  }
}

/**
 * GET <server>/api/v1/health, which a KITT server answers 200 {"status":"ok"}
 * without authentication; then, given an agent, whether the server accepts
 * its token (see checkToken). TLS problems are named (self-signed, unknown
 * CA, client certificate refused) because they are the usual first-install trap.
 */
export async function checkServerHealth(
  serverUrl: string,
  tls: PreflightTls,
  timeoutMs: number,
  agent?: ServerCheckAgent,
): Promise<CheckOutcome> {
  let url: URL;
  try {
    url = new URL(`${serverUrl.replace(/\/+$/, "")}/api/v1/health`);
  } catch {
    return { ok: false, detail: `not a URL: ${serverUrl}` };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { ok: false, detail: `server URL must be http:// or https://, not ${url.protocol}//` };
  }

  const pairProblem = await tlsPairCheck(tls);
  if (pairProblem !== undefined) return { ok: false, detail: pairProblem };

  const options: RequestOptions = { method: "GET", headers: { accept: "application/json" } };
  let clientCert = false;
  if (url.protocol === "https:") {
    const files = {
      ca: await readTlsFile("ca", tls.ca),
      cert: await readTlsFile("cert", tls.cert),
      key: await readTlsFile("key", tls.key),
    };
    for (const value of Object.values(files)) {
      if (typeof value === "string") return { ok: false, detail: value };
    }
    if (files.ca !== undefined) options.ca = files.ca;
    if (files.cert !== undefined) options.cert = files.cert;
    clientCert = files.cert !== undefined;
    if (files.key !== undefined) options.key = files.key;
    options.rejectUnauthorized = tls.insecure !== true;
    // A fresh agent per check: a pooled socket could carry another check's TLS settings.
    options.agent = false;
  }

  const answer = await ask(url, options, timeoutMs, clientCert);
  if ("detail" in answer) return { ok: false, detail: answer.detail };
  if (answer.status !== 200) return { ok: false, detail: `${url.href} answered HTTP ${answer.status}` };
  if ((answer.body as { status?: unknown } | undefined)?.status !== "ok") {
    return { ok: false, detail: `${url.href} answered 200 but not {"status":"ok"}: is this a KITT server?` };
  }
  const insecure = url.protocol === "https:" && tls.insecure === true ? " (certificate not verified: --insecure)" : "";
  if (agent === undefined || agent.token === "") return { ok: true, detail: `${url.origin} is healthy${insecure}${agent === undefined ? "" : "; no token to check"}` };
  const token = await checkToken(url.href.replace(/\/api\/v1\/health$/, ""), agent, options, timeoutMs, clientCert);
  return { ok: token.ok, detail: `${url.origin} is healthy${insecure}; ${token.detail}` };
}
