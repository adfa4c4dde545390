import { KeyObject, webcrypto } from "node:crypto";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type * as X509 from "@peculiar/x509";

export interface PemPair {
  /** PEM certificate. */
  cert: string;
  /** PEM PKCS#8 private key. */
  key: string;
}

export interface TestPki {
  ca: PemPair;
  /** Server certificate for SAN IP 127.0.0.1 and DNS localhost, signed by `ca`. */
  server: PemPair;
  /** Client certificate (CN `clientCN`) signed by `ca`. */
  client: PemPair;
  /** An unrelated CA, for "wrong CA" tests. */
  otherCa: PemPair;
  /** A client certificate signed by `otherCa`: a server trusting `ca` must reject it. */
  otherClient: PemPair;
  clientCN: string;
}

export interface TestPkiOptions {
  /** Common name of the client certificate. Default "test-agent". */
  clientCN?: string;
}

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

type X509Module = typeof X509;
let x509Module: Promise<X509Module> | undefined;

/**
 * @peculiar/x509 needs a Reflect metadata polyfill (tsyringe) loaded before it,
 * so it is imported on first use: importing testkit alone costs nothing.
 */
function loadX509(): Promise<X509Module> {
  x509Module ??= (async () => {
    await import("reflect-metadata");
    const x509 = await import("@peculiar/x509");
    x509.cryptoProvider.set(webcrypto);
    return x509;
  })();
  return x509Module;
}

interface Issuer {
  name: string;
  keys: webcrypto.CryptoKeyPair;
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

function keyPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: "pkcs8", format: "pem" }).toString();
}

function validity(): { notBefore: Date; notAfter: Date } {
  // Back-dated so a slightly skewed clock in a child process still accepts it.
  const now = Date.now();
  return { notBefore: new Date(now - DAY_MS), notAfter: new Date(now + 30 * DAY_MS) };
}

async function makeCa(x509: X509Module, cn: string): Promise<{ issuer: Issuer; pem: PemPair }> {
  const keys = await newKeys();
  const name = `CN=${cn}`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name,
    keys,
    signingAlgorithm: ALGORITHM,
    ...validity(),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { issuer: { name, keys }, pem: { cert: cert.toString("pem"), key: keyPem(keys.privateKey) } };
}

async function makeLeaf(x509: X509Module, issuer: Issuer, cn: string, usage: "server" | "client"): Promise<PemPair> {
  const keys = await newKeys();
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension([usage === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey),
  ];
  if (usage === "server") {
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        { type: "ip", value: "127.0.0.1" },
        { type: "dns", value: "localhost" },
      ]),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${cn}`,
    issuer: issuer.name,
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: ALGORITHM,
    ...validity(),
    extensions,
  });
  return { cert: cert.toString("pem"), key: keyPem(keys.privateKey) };
}

async function generate(clientCN: string): Promise<TestPki> {
  const x509 = await loadX509();
  const ca = await makeCa(x509, "kitt-testkit CA");
  const otherCa = await makeCa(x509, "kitt-testkit unrelated CA");
  return {
    ca: ca.pem,
    server: await makeLeaf(x509, ca.issuer, "localhost", "server"),
    client: await makeLeaf(x509, ca.issuer, clientCN, "client"),
    otherCa: otherCa.pem,
    otherClient: await makeLeaf(x509, otherCa.issuer, clientCN, "client"),
    clientCN,
  };
}

const cache = new Map<string, Promise<TestPki>>();

/** A throw-away CA with server and client certificates, generated once per process per client CN. */
export function makeTestPki(options: TestPkiOptions = {}): Promise<TestPki> {
  const clientCN = options.clientCN ?? "test-agent";
  let pki = cache.get(clientCN);
  if (!pki) {
    pki = generate(clientCN);
    cache.set(clientCN, pki);
    // A failed generation must not poison the cache for later callers.
    pki.catch(() => cache.delete(clientCN));
  }
  return pki;
}

export interface TestPkiPaths {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCaCert: string;
  otherClientCert: string;
  otherClientKey: string;
}

/** Writes the PKI as PEM files into dir (created if missing); private keys get mode 0600. */
export async function writeTestPki(dir: string, options: TestPkiOptions = {}): Promise<TestPkiPaths> {
  const pki = await makeTestPki(options);
  await mkdir(dir, { recursive: true });
  const files: Array<[keyof Omit<TestPkiPaths, "dir">, string, string, boolean]> = [
    ["caCert", "ca.pem", pki.ca.cert, false],
    ["caKey", "ca-key.pem", pki.ca.key, true],
    ["serverCert", "server.pem", pki.server.cert, false],
    ["serverKey", "server-key.pem", pki.server.key, true],
    ["clientCert", "client.pem", pki.client.cert, false],
    ["clientKey", "client-key.pem", pki.client.key, true],
    ["otherCaCert", "other-ca.pem", pki.otherCa.cert, false],
    ["otherClientCert", "other-client.pem", pki.otherClient.cert, false],
    ["otherClientKey", "other-client-key.pem", pki.otherClient.key, true],
  ];
  const paths = { dir } as TestPkiPaths;
  for (const [field, name, content, secret] of files) {
    const path = join(dir, name);
    await writeFile(path, content, { mode: secret ? 0o600 : 0o644 });
    // writeFile's mode only applies to new files; an existing key file must be tightened too.
    await chmod(path, secret ? 0o600 : 0o644);
    paths[field] = path;
  }
  return paths;
}
