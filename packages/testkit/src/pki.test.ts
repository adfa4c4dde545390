import { afterEach, describe, expect, it } from "vitest";
import { X509Certificate } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import https from "node:https";
import { startFakeKittServer, type FakeKittServer } from "./fake-server.js";
import { makeTestPki, writeTestPki } from "./pki.js";
import { useTempDir } from "./temp-dir.js";

const tempDir = useTempDir(afterEach);
let server: FakeKittServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface TlsGet {
  status: number;
  body: string;
}

/** A GET over node:https with its own connection (no pooling), so every call does a fresh handshake. */
function tlsGet(url: string, options: https.RequestOptions): Promise<TlsGet> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent: false, ...options }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
  });
}

async function startMtls(extra: { requestCert?: boolean; rejectUnauthorized?: boolean } = {}): Promise<FakeKittServer> {
  const pki = await makeTestPki();
  server = await startFakeKittServer({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, ...extra } });
  return server;
}

describe("makeTestPki", () => {
  it("makes a CA, a server cert for 127.0.0.1/localhost, a client cert, and an unrelated pair", async () => {
    const pki = await makeTestPki();
    const ca = new X509Certificate(pki.ca.cert);
    const serverCert = new X509Certificate(pki.server.cert);
    const client = new X509Certificate(pki.client.cert);
    expect(ca.ca).toBe(true);
    expect(serverCert.checkIssued(ca)).toBe(true);
    expect(serverCert.verify(ca.publicKey)).toBe(true);
    expect(serverCert.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(serverCert.checkHost("localhost")).toBe("localhost");
    expect(client.subject).toContain("CN=test-agent");
    expect(client.verify(ca.publicKey)).toBe(true);
    expect(new X509Certificate(pki.otherClient.cert).verify(ca.publicKey)).toBe(false);
    expect(new X509Certificate(pki.otherClient.cert).verify(new X509Certificate(pki.otherCa.cert).publicKey)).toBe(true);
    expect(pki.client.key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it("is cached per client CN", async () => {
    expect(await makeTestPki()).toBe(await makeTestPki({ clientCN: "test-agent" }));
    const other = await makeTestPki({ clientCN: "gpu-07" });
    expect(other.clientCN).toBe("gpu-07");
    expect(new X509Certificate(other.client.cert).subject).toContain("CN=gpu-07");
  });

  it("writes PEM files with private keys readable by the owner only", async () => {
    const dir = await tempDir();
    await writeFile(`${dir}/client-key.pem`, "old", { mode: 0o644 });
    const paths = await writeTestPki(dir);
    const pki = await makeTestPki();
    expect(await readFile(paths.clientCert, "utf8")).toBe(pki.client.cert);
    for (const key of [paths.caKey, paths.serverKey, paths.clientKey, paths.otherClientKey]) {
      expect((await stat(key)).mode & 0o777).toBe(0o600);
    }
    expect((await stat(paths.caCert)).mode & 0o777).toBe(0o644);
  });
});

describe("mTLS", () => {
  it("serves a client with a certificate from the CA and records its CN", async () => {
    const pki = await makeTestPki();
    const s = await startMtls();
    expect(s.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await tlsGet(`${s.url}/api/v1/health`, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key });
    expect(res).toEqual({ status: 200, body: '{"status":"ok"}' });
    expect(s.requests[0]?.clientCertCN).toBe("test-agent");
  });

  it("verifies as localhost too", async () => {
    const pki = await makeTestPki();
    const s = await startMtls();
    const res = await tlsGet(`https://localhost:${s.port}/api/v1/health`, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key, family: 4 });
    expect(res.status).toBe(200);
  });

  it("rejects a client without a certificate at the TLS layer", async () => {
    const pki = await makeTestPki();
    const s = await startMtls();
    await expect(tlsGet(`${s.url}/api/v1/health`, { ca: pki.ca.cert })).rejects.toThrow();
    expect(s.requests).toHaveLength(0);
  });

  it("rejects a client certificate from another CA", async () => {
    const pki = await makeTestPki();
    const s = await startMtls();
    await expect(tlsGet(`${s.url}/api/v1/health`, { ca: pki.ca.cert, cert: pki.otherClient.cert, key: pki.otherClient.key })).rejects.toThrow();
    expect(s.requests).toHaveLength(0);
  });

  it("the server certificate is not trusted by a client that trusts another CA", async () => {
    const pki = await makeTestPki();
    const s = await startMtls();
    await expect(tlsGet(`${s.url}/api/v1/health`, { ca: pki.otherCa.cert, cert: pki.client.cert, key: pki.client.key })).rejects.toThrow(
      /self-signed|unable to verify|certificate/i,
    );
  });

  it("can serve plain HTTPS without asking for a client certificate", async () => {
    const pki = await makeTestPki();
    const s = await startMtls({ requestCert: false });
    expect((await tlsGet(`${s.url}/api/v1/health`, { ca: pki.ca.cert })).status).toBe(200);
    expect(s.requests[0]?.clientCertCN).toBeNull();
  });

  it("keeps mTLS across down() and up()", async () => {
    const pki = await makeTestPki();
    const s = await startMtls();
    await s.down();
    await s.up();
    const ok = await tlsGet(`${s.url}/api/v1/health`, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key });
    expect(ok.status).toBe(200);
    await expect(tlsGet(`${s.url}/api/v1/health`, { ca: pki.ca.cert })).rejects.toThrow();
  });
});
