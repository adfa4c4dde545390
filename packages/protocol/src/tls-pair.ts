import { createPrivateKey, X509Certificate } from "node:crypto";

import { ConfigError } from "./errors.js";

/** Where each half of a client pair comes from, as agent.yaml names it. */
export interface TlsPairPaths {
  cert: string;
  key: string;
}

/**
 * Why a certificate and a private key cannot serve as one TLS identity, in one
 * line naming both files; undefined when the key belongs to the certificate.
 * Node's own verdict ("key values mismatch", deep in a handshake or a
 * listen) names neither file.
 */
export function tlsPairProblem(pem: { cert: string | Buffer; key: string | Buffer }, paths: TlsPairPaths, labels = { cert: "tls.cert", key: "tls.key" }): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem.cert);
  } catch {
    return `${labels.cert} ${paths.cert}: not a PEM certificate`;
  }
  let matches: boolean;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(pem.key));
  } catch {
    return `${labels.key} ${paths.key}: not a PEM private key`;
  }
  return matches ? undefined : `${labels.key} ${paths.key} does not match ${labels.cert} ${paths.cert}`;
}

/** Throws a ConfigError (one line, both files named) unless `key` is the private key of `cert`; no-op when either is unset. */
export function assertTlsPair(
  paths: { cert?: string | undefined; key?: string | undefined },
  pem: { cert?: string | Buffer | undefined; key?: string | Buffer | undefined },
): void {
  if (paths.cert === undefined || paths.key === undefined || pem.cert === undefined || pem.key === undefined) return;
  const problem = tlsPairProblem({ cert: pem.cert, key: pem.key }, { cert: paths.cert, key: paths.key });
  if (problem !== undefined) throw new ConfigError(problem, { field: "tls.key" });
}
