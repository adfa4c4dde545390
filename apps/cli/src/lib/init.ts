import { constants } from "node:fs";
import { access, lstat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Readable } from "node:stream";

import type { AgentConfigFile } from "@kitt/protocol";
import { ConfigError, resolveAgentConfig, UsageError, writeAgentConfig } from "@kitt/protocol";

import { createSigningRequest, issueClientCertificate } from "./certs.js";
import { readTokenInput } from "./token-input.js";

export interface InitOptions {
  configPath: string;
  server: string;
  /** The token, or `-` to read it from `stdin`. */
  token?: string;
  tokenFile?: string;
  /** KITT_AGENT_TOKEN, used when neither --token nor --token-file is given. */
  envToken?: string;
  stdin?: Readable;
  name?: string;
  /** Address the agent's API binds (agent.yaml `host`); absent: the default, 0.0.0.0. */
  host?: string;
  port?: number;
  modelDir?: string;
  shareSource?: string;
  shareMount?: string;
  force?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  caCert?: string;
  caKey?: string;
  /** Base for relative paths given as flags. */
  cwd?: string;
  home?: string;
}

export type TlsSetup =
  | { kind: "none" }
  | { kind: "existing" }
  | { kind: "issued"; cert: string; key: string; ca: string }
  | { kind: "csr"; key: string; csr: string; certPath: string };

export interface InitResult {
  path: string;
  written: AgentConfigFile;
  tls: TlsSetup;
}

const FLAG_OF: Record<string, string> = {
  server_url: "--server",
  token: "--token",
  name: "--name",
  host: "--host",
  port: "--port",
  model_storage_dir: "--model-dir",
  model_share_source: "--share-source",
  model_share_mount: "--share-mount",
  "tls.cert": "--tls-cert",
  "tls.key": "--tls-key",
  "tls.ca": "--tls-ca",
};

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function mustRead(path: string, flag: string): Promise<void> {
  try {
    await access(path, constants.R_OK);
  } catch {
    throw new UsageError(`${flag} ${path}: not a readable file`);
  }
}

/** Checks the values the way the agent will read them back, naming the flag at fault. */
function validate(doc: AgentConfigFile, path: string, home: string): void {
  try {
    // An empty env: KITT_AGENT_* overrides must not hide a bad flag value.
    resolveAgentConfig(doc as Record<string, unknown>, { path, env: {}, homedir: home });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const flag = err.field === undefined ? undefined : FLAG_OF[err.field];
    const detail = err.message.startsWith(`${path}: `) ? err.message.slice(path.length + 2) : err.message;
    throw new UsageError(flag === undefined ? detail : `${flag}: ${detail}`, { cause: err });
  }
}

/**
 * Writes agent.yaml (0600, atomically) from init's flags, and sets up mTLS:
 * records existing files, issues a client certificate from a CA key, or, for
 * an https server without either, creates a key and a CSR to get signed.
 */
export async function initAgent(options: InitOptions): Promise<InitResult> {
  const cwd = options.cwd ?? process.cwd();
  const home = options.home ?? homedir();
  const abs = (p: string): string => resolve(cwd, p.startsWith("~/") ? join(home, p.slice(2)) : p);
  const path = options.configPath;
  const someTls = [options.tlsCert, options.tlsKey, options.tlsCa].some((v) => v !== undefined);
  const someCa = options.caCert !== undefined || options.caKey !== undefined;
  if (someTls && someCa) throw new UsageError("use either --tls-cert/--tls-key/--tls-ca or --ca-cert/--ca-key, not both");
  if (someCa && (options.caCert === undefined || options.caKey === undefined)) {
    throw new UsageError("--ca-cert and --ca-key must be given together");
  }
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new UsageError("--tls-cert and --tls-key must be given together");
  }

  const token = await readTokenInput(options);
  const doc: AgentConfigFile = { server_url: options.server.trim(), token: token ?? "" };
  if (options.name !== undefined) doc.name = options.name;
  if (options.host !== undefined) doc.host = options.host.trim();
  if (options.port !== undefined) doc.port = options.port;
  if (options.modelDir !== undefined) doc.model_storage_dir = abs(options.modelDir);
  if (options.shareSource !== undefined) doc.model_share_source = options.shareSource;
  if (options.shareMount !== undefined) doc.model_share_mount = abs(options.shareMount);
  validate(doc, path, home);
  // Bad flags are reported first; only a valid request meets the overwrite guard.
  if (!options.force && (await exists(path))) {
    throw new UsageError(`${path} already exists (use --force to overwrite it)`);
  }
  const { config } = resolveAgentConfig(doc as Record<string, unknown>, { path, env: {}, homedir: home });
  doc.server_url = config.server_url;
  doc.name = config.name;
  doc.port = config.port;
  doc.model_storage_dir = config.model_storage_dir;

  let tls: TlsSetup = { kind: "none" };
  const certsDir = join(home, ".kitt", "certs");
  const makesKey = !someTls && (someCa || config.server_url.startsWith("https:"));
  if (makesKey && !options.force) {
    // A new key would orphan the certificate already issued for the old one.
    for (const file of ["agent-key.pem", "agent.pem"]) {
      const existing = join(certsDir, file);
      if (await exists(existing)) throw new UsageError(`${existing} already exists (use --force to overwrite it)`);
    }
  }
  if (someTls) {
    const files: NonNullable<AgentConfigFile["tls"]> = {};
    if (options.tlsCert !== undefined) files.cert = abs(options.tlsCert);
    if (options.tlsKey !== undefined) files.key = abs(options.tlsKey);
    if (options.tlsCa !== undefined) files.ca = abs(options.tlsCa);
    for (const [field, value] of Object.entries(files)) await mustRead(value, `--tls-${field}`);
    doc.tls = files;
    tls = { kind: "existing" };
  } else if (someCa) {
    const issued = await issueClientCertificate({
      cn: config.name,
      caCertPath: abs(options.caCert as string),
      caKeyPath: abs(options.caKey as string),
      dir: certsDir,
    });
    doc.tls = { cert: issued.cert, key: issued.key, ...(issued.ca === undefined ? {} : { ca: issued.ca }) };
    tls = { kind: "issued", cert: issued.cert, key: issued.key, ca: issued.ca ?? "" };
  } else if (config.server_url.startsWith("https:")) {
    const request = await createSigningRequest({ cn: config.name, dir: certsDir });
    const certPath = join(certsDir, "agent.pem");
    // Recorded now so that placing the signed certificate is the only step left.
    doc.tls = { cert: certPath, key: request.key };
    tls = { kind: "csr", key: request.key, csr: request.csr, certPath };
  }
  await writeAgentConfig(path, doc);
  return { path, written: doc, tls };
}
