import { maskToken } from "./config.js";
import type { InitResult } from "./init.js";

/** What init tells the operator: the values written (token masked), the mTLS outcome, the next step. */
export function formatInitResult(result: InitResult): string {
  const w = result.written;
  const rows: Array<[string, string]> = [
    ["server_url", w.server_url ?? ""],
    ["token", maskToken(w.token ?? "")],
    ["name", w.name ?? ""],
    ["host", w.host ?? "0.0.0.0 (default: all interfaces)"],
    ["port", String(w.port ?? "")],
    ["model_storage_dir", w.model_storage_dir ?? ""],
  ];
  if (w.model_share_source) rows.push(["model_share_source", w.model_share_source]);
  if (w.model_share_mount) rows.push(["model_share_mount", w.model_share_mount]);
  if (w.tls?.cert) rows.push(["tls.cert", w.tls.cert]);
  if (w.tls?.key) rows.push(["tls.key", w.tls.key]);
  if (w.tls?.ca) rows.push(["tls.ca", w.tls.ca]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [`Wrote ${result.path} (mode 0600):`, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`), ""];
  switch (result.tls.kind) {
    case "issued":
      lines.push(`Issued a client certificate for CN=${w.name ?? ""} signed by the KITT CA (key mode 0600).`, "");
      break;
    case "kept":
      lines.push("Kept the client certificate and key already in place (the key matches the certificate).", "");
      break;
    case "csr":
      lines.push(
        result.tls.keptKey
          ? `The server is https and ${result.tls.key} still waits for its certificate: kept that key and wrote a new signing request for it.`
          : "The server is https but no certificate was given: created a key and a certificate signing request.",
        `  Get ${result.tls.csr} signed by the KITT CA, e.g.:`,
        `    openssl x509 -req -copy_extensions copyall -in agent.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 825 -out agent.pem`,
        `  then put the certificate at ${result.tls.certPath}`,
        "  (or run init again with --ca-cert/--ca-key to have it issued here).",
        "  If the server's certificate is signed by a private CA, add its certificate as tls.ca in agent.yaml.",
        "",
      );
      break;
    default:
      break;
  }
  lines.push("Next: kitt-agent preflight, then kitt-agent start (or kitt-agent service install).");
  return lines.join("\n");
}

/** init --json: what was written (token masked) and the mTLS outcome. */
export function initResultJson(result: InitResult): Record<string, unknown> {
  return { path: result.path, written: { ...result.written, token: maskToken(result.written.token ?? "") }, tls: result.tls };
}
