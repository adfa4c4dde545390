import { constants } from "node:fs";
import { access, lstat, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Readable } from "node:stream";

import type { AgentConfigFile, TlsConfig } from "@kitt/protocol";
import { ConfigError, loadAgentConfig, resolveAgentConfig, tlsPairProblem, UsageError, writeAgentConfig } from "@kitt/protocol";

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
  /** init --force found a matching pair in place (old agent.yaml or ~/.kitt/certs) and kept it. */
  | { kind: "kept"; cert: string; key: string; ca: string }
  | { kind: "issued"; cert: string; key: string; ca: string }
  /** keptKey: the key was there already (waiting for its certificate); only the request is new. */
  | { kind: "csr"; key: string; csr: string; certPath: string; keptKey: boolean };

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

/** One line naming both files when the key is not the certificate's (or either is not PEM). */
async function pairProblem(cert: string, key: string, labels: { cert: string; key: string }): Promise<string | undefined> {
  const read = (file: string, label: string) =>
    readFile(file).catch((err: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read ${label} ${file}: ${err.code ?? String(err)}`, { cause: err });
    });
  const [certPem, keyPem] = await Promise.all([read(cert, labels.cert), read(key, labels.key)]);
  return tlsPairProblem({ cert: certPem, key: keyPem }, { cert, key }, labels);
}

/**
 * The mTLS files init --force finds in place: those the old agent.yaml's tls
 * names (a broken or absent file names none), else agent.pem / agent-key.pem
 * in ~/.kitt/certs; only files that exist. `fromConfig` tells which, and
 * `certPath` is where the certificate belongs (it may not be there yet).
 */
async function tlsInPlace(path: string, home: string, certsDir: string): Promise<TlsConfig & { fromConfig: boolean; certPath: string }> {
  let old: TlsConfig = {};
  try {
    old = (await loadAgentConfig({ path, requireServer: false, env: {}, homedir: home })).config.tls;
  } catch {
    // What --force replaces may be broken: then it names no files.
  }
  const fromConfig = old.cert !== undefined && old.key !== undefined;
  const named = fromConfig ? old : { cert: join(certsDir, "agent.pem"), key: join(certsDir, "agent-key.pem") };
  const found: TlsConfig & { fromConfig: boolean; certPath: string } = { fromConfig, certPath: named.cert ?? join(certsDir, "agent.pem") };
  for (const field of ["cert", "key"] as const) {
    const file = named[field];
    if (file !== undefined && (await exists(file))) found[field] = file;
  }
  // A CA file that is gone is not carried into the new agent.yaml.
  if (old.ca !== undefined && (await exists(old.ca))) found.ca = old.ca;
  return found;
}

const NEW_PAIR_HINT = "give --ca-cert/--ca-key to issue a new pair, or --tls-cert/--tls-key to name a matching one";

/**
 * Writes agent.yaml (0600, atomically) from init's flags, and sets up mTLS:
 * records existing files, issues a client certificate from a CA key, or, for
 * an https server without either, creates a key and a CSR to get signed.
 *
 * Never leaves a key that does not match its certificate: --force without TLS
 * flags keeps the pair already in place (and tls.ca) when it matches, refuses
 * when it does not, keeps a key still waiting for its certificate (a new CSR
 * for the same key), and replaces key and certificate only together (--ca-*).
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
  const inPlace = options.force && !someCa ? await tlsInPlace(path, home, certsDir) : { fromConfig: false, certPath: join(certsDir, "agent.pem") };
  const keptCa = inPlace.ca === undefined ? {} : { ca: inPlace.ca };
  if (someTls) {
    const files: NonNullable<AgentConfigFile["tls"]> = { ...keptCa };
    if (options.tlsCert !== undefined) files.cert = abs(options.tlsCert);
    if (options.tlsKey !== undefined) files.key = abs(options.tlsKey);
    if (options.tlsCa !== undefined) files.ca = abs(options.tlsCa);
    for (const [field, value] of Object.entries(files)) await mustRead(value, `--tls-${field}`);
    if (files.cert !== undefined && files.key !== undefined) {
      const problem = await pairProblem(files.cert, files.key, { cert: "--tls-cert", key: "--tls-key" });
      if (problem !== undefined) throw new UsageError(problem);
    }
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
  } else if (inPlace.cert !== undefined && inPlace.key !== undefined && (inPlace.fromConfig || makesKey)) {
    const problem = await pairProblem(inPlace.cert, inPlace.key, { cert: "tls.cert", key: "tls.key" });
    if (problem !== undefined) throw new UsageError(`${problem}: init --force keeps a matching pair only; ${NEW_PAIR_HINT}`);
    doc.tls = { cert: inPlace.cert, key: inPlace.key, ...keptCa };
    tls = { kind: "kept", cert: inPlace.cert, key: inPlace.key, ca: inPlace.ca ?? "" };
  } else if (makesKey) {
    if (inPlace.cert !== undefined) {
      throw new UsageError(`${inPlace.cert} has no key beside it: a new key would not match it; remove it, or ${NEW_PAIR_HINT}`);
    }
    const request = await createSigningRequest({ cn: config.name, dir: certsDir, ...(inPlace.key === undefined ? {} : { keyPath: inPlace.key }) });
    const certPath = inPlace.certPath;
    // Recorded now so that placing the signed certificate is the only step left.
    doc.tls = { cert: certPath, key: request.key, ...keptCa };
    tls = { kind: "csr", key: request.key, csr: request.csr, certPath, keptKey: inPlace.key !== undefined };
  }
  await writeAgentConfig(path, doc);
  return { path, written: doc, tls };
}
