import { readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { makeTempDir, makeTestPki, startFakeKittServer, writeTestPki, type FakeKittServer, type TempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { join } from "node:path";
import { runCommand, succeeded } from "./run-command.js";
import { checkServerHealth } from "./server-health.js";

const servers: FakeKittServer[] = [];
const plain: http.Server[] = [];
const dirs: TempDir[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(plain.splice(0).map((s) => new Promise((r) => s.close(r))));
  await Promise.all(dirs.splice(0).map((d) => d.cleanup()));
});

async function kitt(options: Parameters<typeof startFakeKittServer>[0] = {}): Promise<FakeKittServer> {
  const server = await startFakeKittServer(options);
  servers.push(server);
  return server;
}

async function pkiFiles(): Promise<Awaited<ReturnType<typeof writeTestPki>>> {
  const dir = await makeTempDir("kitt-hw-pki-");
  dirs.push(dir);
  return writeTestPki(dir.path);
}

/**
 * A genuinely self-signed server certificate (testkit's PKI only makes
 * CA-signed ones), made with the openssl CLI the way admins make them.
 */
async function selfSigned(): Promise<{ cert: string; key: string; certFile: string }> {
  const dir = await makeTempDir("kitt-hw-self-");
  dirs.push(dir);
  const certFile = join(dir.path, "cert.pem");
  const keyFile = join(dir.path, "key.pem");
  const result = await runCommand(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", keyFile, "-out", certFile],
    { timeoutMs: 20_000 },
  );
  if (!succeeded(result)) throw new Error(`cannot make a self-signed certificate: ${result.message ?? ""}`);
  return { cert: await readFile(certFile, "utf8"), key: await readFile(keyFile, "utf8"), certFile };
}

async function rawServer(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  plain.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("checkServerHealth over HTTP", () => {
  it("passes against a KITT server, with or without a trailing slash", async () => {
    const server = await kitt();
    expect(await checkServerHealth(server.url, {}, 5000)).toEqual({ ok: true, detail: `${server.url} is healthy` });
    expect((await checkServerHealth(`${server.url}/`, {}, 5000)).ok).toBe(true);
  });

  it("with an agent, verifies its token by an authenticated call that stores nothing", async () => {
    const server = await kitt({ agents: [{ name: "gpu-01", token: "good-token" }] });
    expect(await checkServerHealth(server.url, {}, 5000, { name: "gpu-01", token: "good-token" })).toEqual({
      ok: true,
      detail: `${server.url} is healthy; token accepted for agent gpu-01`,
    });
    expect(await checkServerHealth(server.url, {}, 5000, { name: "gpu-01", token: "bad-token" })).toEqual({
      ok: false,
      detail: `${server.url} is healthy; token rejected for agent gpu-01 (HTTP 403): check token in agent.yaml`,
    });
    server.failNext(1, 500, { error: "boom" }, { path: "/api/v1/agents/gpu-01/results" });
    expect(await checkServerHealth(server.url, {}, 5000, { name: "gpu-01", token: "good-token" })).toEqual({
      ok: false,
      detail: `${server.url} is healthy; token check answered HTTP 500 (POST /api/v1/agents/gpu-01/results)`,
    });
    expect(await checkServerHealth(server.url, {}, 5000, { name: "gpu-01", token: "" })).toEqual({ ok: true, detail: `${server.url} is healthy; no token to check` });
    expect(server.results).toEqual([]);
    expect(server.heartbeats).toEqual([]);
  });

  it("fails on an error status", async () => {
    const server = await kitt();
    server.failNext(1, 503, { error: "maintenance" }, { path: "/api/v1/health" });
    expect(await checkServerHealth(server.url, {}, 5000)).toEqual({
      ok: false,
      detail: `${server.url}/api/v1/health answered HTTP 503`,
    });
  });

  it("fails when a 200 is not KITT's health answer", async () => {
    const url = await rawServer((_req, res) => res.end("<html>router login</html>"));
    expect((await checkServerHealth(url, {}, 5000)).detail).toMatch(/answered 200 but not \{"status":"ok"\}/);
  });

  it("says connection refused when nothing listens", async () => {
    const server = await kitt();
    const url = server.url;
    await server.close();
    expect(await checkServerHealth(url, {}, 5000)).toEqual({ ok: false, detail: `connection refused by ${new URL(url).host}` });
  });

  it("gives up at the timeout", async () => {
    const server = await kitt();
    server.delayNext(1, 10_000, { path: "/api/v1/health" });
    expect(await checkServerHealth(server.url, {}, 200)).toEqual({
      ok: false,
      detail: `no answer from ${new URL(server.url).host} within 200 ms`,
    });
  });

  it("rejects URLs it cannot use", async () => {
    expect(await checkServerHealth("kitt:8080", {}, 1000)).toMatchObject({ ok: false, detail: expect.stringMatching(/must be http/) });
    expect(await checkServerHealth("not a url", {}, 1000)).toEqual({ ok: false, detail: "not a URL: not a url" });
  });
});

describe("checkServerHealth over HTTPS", () => {
  it("passes with the CA and a client certificate (mTLS)", async () => {
    const pki = await makeTestPki();
    const files = await pkiFiles();
    const server = await kitt({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert } });
    expect(
      await checkServerHealth(server.url, { ca: files.caCert, cert: files.clientCert, key: files.clientKey }, 5000),
    ).toEqual({ ok: true, detail: `${server.url} is healthy` });
  });

  it("names a self-signed server certificate, and trusts it when it is tls.ca", async () => {
    const self = await selfSigned();
    const server = await kitt({ tls: { cert: self.cert, key: self.key, ca: self.cert, requestCert: false } });
    expect(await checkServerHealth(server.url, {}, 5000)).toEqual({
      ok: false,
      detail: "TLS: self-signed certificate (use --insecure or set tls.ca)",
    });
    expect(await checkServerHealth(server.url, { ca: self.certFile }, 5000)).toMatchObject({ ok: true });
  });

  it("explains a CA certificate served as the server's own", async () => {
    const pki = await makeTestPki();
    const server = await kitt({ tls: { cert: pki.ca.cert, key: pki.ca.key, ca: pki.ca.cert, requestCert: false } });
    expect((await checkServerHealth(server.url, {}, 5000)).detail).toMatch(/^TLS: the server certificate is not issued for TLS servers/);
  });

  it("names a certificate from a CA it was not told about, and passes with --insecure", async () => {
    const pki = await makeTestPki();
    const server = await kitt({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, requestCert: false } });
    expect((await checkServerHealth(server.url, {}, 5000)).detail).toMatch(/^TLS: certificate signed by an unknown CA/);
    expect(await checkServerHealth(server.url, { insecure: true }, 5000)).toEqual({
      ok: true,
      detail: `${server.url} is healthy (certificate not verified: --insecure)`,
    });
  });

  it("says when the server wants a client certificate and none was given", async () => {
    const pki = await makeTestPki();
    const files = await pkiFiles();
    const server = await kitt({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert } });
    expect((await checkServerHealth(server.url, { ca: files.caCert }, 5000)).detail).toMatch(/client certificate/);
  });

  it("says when the server refuses a client certificate from another CA", async () => {
    const pki = await makeTestPki();
    const files = await pkiFiles();
    const server = await kitt({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert } });
    const result = await checkServerHealth(
      server.url,
      { ca: files.caCert, cert: files.otherClientCert, key: files.otherClientKey },
      5000,
    );
    // An alert or a bare reset, depending on timing: both must point at the client certificate.
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/client certificate \(check tls.cert, tls.key and the server's CA\)$/);
  });

  it("fails clearly when a tls file cannot be read", async () => {
    const server = await kitt();
    const https = server.url.replace("http:", "https:");
    expect(await checkServerHealth(https, { ca: "/nonexistent/ca.pem" }, 5000)).toEqual({
      ok: false,
      detail: "cannot read tls.ca (/nonexistent/ca.pem): ENOENT",
    });
  });

  it("says so when https:// points at a plain HTTP port", async () => {
    const server = await kitt();
    const https = server.url.replace("http:", "https:");
    expect((await checkServerHealth(https, {}, 5000)).detail).toBe("TLS: the server does not speak HTTPS on this port (try http://)");
  });
});
