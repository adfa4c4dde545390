import { createPrivateKey, createPublicKey, KeyObject, webcrypto } from "node:crypto";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";

import type * as X509 from "@peculiar/x509";
import { UsageError } from "@kitt/protocol";

type X509Module = typeof X509;
let x509Module: Promise<X509Module> | undefined;

/** @peculiar/x509 needs the Reflect metadata polyfill loaded first; only init pays for either. */
function loadX509(): Promise<X509Module> {
  x509Module ??= (async () => {
    await import("reflect-metadata");
    const x509 = await import("@peculiar/x509");
    x509.cryptoProvider.set(webcrypto);
    return x509;
  })();
  return x509Module;
}

const CLIENT_KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface ClientCertFiles {
  cert: string;
  key: string;
  /** The CA certificate copied next to them (what agent.yaml's tls.ca names). */
  ca?: string;
  /** Only for the CSR flow. */
  csr?: string;
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

/**
 * Writes each file with its mode (also over a file that had a looser one):
 * every file goes to a temporary name first and only when all are written are
 * they renamed into place, so a failure leaves the old set whole.
 */
async function writeAllOrNone(files: Array<[path: string, text: string, mode: number]>): Promise<void> {
  const tmps: string[] = [];
  try {
    for (const [path, text, mode] of files) {
      const tmp = `${path}.${process.pid}.tmp`;
      tmps.push(tmp);
      await writeFile(tmp, text, { mode });
      await chmod(tmp, mode);
    }
  } catch (err) {
    await Promise.all(tmps.map((t) => rm(t, { force: true })));
    throw err;
  }
  for (const [i, [path]] of files.entries()) await rename(tmps[i] as string, path);
}

interface SigningKey {
  /** The private key as a WebCrypto signing key. */
  key: webcrypto.CryptoKey;
  /** What the key is imported as (also what its public half is imported as). */
  importAs: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams;
  /** The signature algorithm to sign with it. */
  algorithm: webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams;
  keyObject: KeyObject;
}

/** A PEM private key (EC P-256/384/521 or RSA) as a WebCrypto signing key plus the matching signature algorithm. */
async function importSigningKey(pem: string, path: string, hint: string): Promise<SigningKey> {
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(pem);
  } catch (err) {
    throw new UsageError(`${path}: not a PEM private key`, { cause: err });
  }
  const der = keyObject.export({ type: "pkcs8", format: "der" });
  if (keyObject.asymmetricKeyType === "ec") {
    const curve = keyObject.asymmetricKeyDetails?.namedCurve;
    const named = curve === "prime256v1" ? "P-256" : curve === "secp384r1" ? "P-384" : curve === "secp521r1" ? "P-521" : undefined;
    if (named === undefined) throw new UsageError(`${path}: unsupported EC curve ${curve ?? "(unknown)"}`);
    const hash = named === "P-256" ? "SHA-256" : named === "P-384" ? "SHA-384" : "SHA-512";
    const importAs = { name: "ECDSA", namedCurve: named };
    const key = await webcrypto.subtle.importKey("pkcs8", der, importAs, false, ["sign"]);
    return { key, importAs, algorithm: { name: "ECDSA", hash } as webcrypto.EcdsaParams, keyObject };
  }
  if (keyObject.asymmetricKeyType === "rsa") {
    const importAs = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
    const key = await webcrypto.subtle.importKey("pkcs8", der, importAs, false, ["sign"]);
    return { key, importAs, algorithm: importAs as webcrypto.Algorithm, keyObject };
  }
  throw new UsageError(`${path}: unsupported key type ${keyObject.asymmetricKeyType ?? "(unknown)"} (${hint})`);
}

function keyPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: "pkcs8", format: "pem" }).toString();
}

function commonName(x509: X509Module, cn: string): X509.Name {
  return new x509.Name([{ CN: [cn] }]);
}

/**
 * The daemon serves its local API with this same certificate (tls.cert), so it
 * must be good for both ends of TLS: clientAuth towards the KITT server,
 * serverAuth plus names that a client on this host may dial.
 */
function dualUseExtensions(x509: X509Module, host: string): X509.Extension[] {
  const dns = [...new Set([host, "localhost"].filter((h) => h !== ""))];
  return [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    new x509.SubjectAlternativeNameExtension([...dns.map((value) => ({ type: "dns" as const, value })), { type: "ip", value: "127.0.0.1" }]),
  ];
}

/**
 * A fresh ECDSA P-256 key and a client (and local API server) certificate for `cn`, signed by the CA
 * (cert + key PEM files), written into `dir` as agent.pem / agent-key.pem
 * (0600) with the CA certificate copied to ca.pem. Refuses a CA key that does
 * not belong to the CA certificate.
 */
export async function issueClientCertificate(options: {
  cn: string;
  caCertPath: string;
  caKeyPath: string;
  dir: string;
  validDays?: number;
  now?: Date;
  /** DNS name for the subjectAltName (default: this host's name). */
  hostname?: string;
}): Promise<ClientCertFiles> {
  const x509 = await loadX509();
  const caPem = await readText(options.caCertPath, "CA certificate");
  let caCert: X509.X509Certificate;
  try {
    caCert = new x509.X509Certificate(caPem);
  } catch (err) {
    throw new UsageError(`${options.caCertPath}: not a PEM certificate`, { cause: err });
  }
  const caKeyPem = await readText(options.caKeyPath, "CA key");
  const { key: signingKey, algorithm } = await importSigningKey(caKeyPem, options.caKeyPath, "use an EC or RSA CA key");
  const fromKey = createPublicKey(createPrivateKey(caKeyPem)).export({ type: "spki", format: "der" });
  if (!Buffer.from(caCert.publicKey.rawData).equals(fromKey)) {
    throw new UsageError(`${options.caKeyPath} is not the private key of ${options.caCertPath}`);
  }
  const keys = (await webcrypto.subtle.generateKey({ ...CLIENT_KEY_ALGORITHM }, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const now = options.now?.getTime() ?? Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    subject: commonName(x509, options.cn),
    issuer: caCert.subjectName,
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: algorithm,
    // Back-dated an hour: a server whose clock runs slightly behind still accepts it.
    notBefore: new Date(now - 60 * 60 * 1000),
    notAfter: new Date(now + (options.validDays ?? 825) * DAY_MS),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      ...dualUseExtensions(x509, options.hostname ?? osHostname()),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  if (!(await cert.verify({ publicKey: caCert, signatureOnly: true }))) {
    throw new UsageError(`the certificate signed with ${options.caKeyPath} does not verify against ${options.caCertPath}`);
  }
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  const files = { cert: join(options.dir, "agent.pem"), key: join(options.dir, "agent-key.pem"), ca: join(options.dir, "ca.pem") };
  // All three written aside first, then renamed in a row: a failed write never leaves a new key beside the old certificate.
  await writeAllOrNone([
    [files.key, keyPem(keys.privateKey), 0o600],
    [files.cert, cert.toString("pem"), 0o644],
    [files.ca, caCert.toString("pem"), 0o644],
  ]);
  return files;
}

/**
 * A certificate signing request for `cn` (agent.csr) for a CA the operator
 * does not hold here: for a fresh key (agent-key.pem, 0600), or, given
 * `keyPath`, for that existing key, which stays as it is (a certificate signed
 * for an earlier request from it still matches).
 */
export async function createSigningRequest(options: {
  cn: string;
  dir: string;
  hostname?: string;
  keyPath?: string;
}): Promise<Required<Pick<ClientCertFiles, "key" | "csr">>> {
  const x509 = await loadX509();
  let keys: webcrypto.CryptoKeyPair;
  let signingAlgorithm: webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" } as webcrypto.EcdsaParams;
  if (options.keyPath === undefined) {
    keys = (await webcrypto.subtle.generateKey({ ...CLIENT_KEY_ALGORITHM }, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  } else {
    const existing = await importSigningKey(await readText(options.keyPath, "key"), options.keyPath, "use an EC or RSA key");
    const spki = createPublicKey(existing.keyObject).export({ type: "spki", format: "der" });
    keys = { privateKey: existing.key, publicKey: await webcrypto.subtle.importKey("spki", spki, existing.importAs, true, ["verify"]) };
    signingAlgorithm = existing.algorithm;
  }
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: commonName(x509, options.cn),
    keys,
    signingAlgorithm,
    extensions: dualUseExtensions(x509, options.hostname ?? osHostname()),
  });
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  const files = { key: options.keyPath ?? join(options.dir, "agent-key.pem"), csr: join(options.dir, "agent.csr") };
  await writeAllOrNone([
    ...(options.keyPath === undefined ? [[files.key, keyPem(keys.privateKey), 0o600] as [string, string, number]] : []),
    [files.csr, csr.toString("pem"), 0o644],
  ]);
  return files;
}
