import { X509Certificate, createPrivateKey, createPublicKey } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { KittServerClient } from "@kitt/protocol";
import { startFakeKittServer, useTempDir, writeTestPki, type FakeKittServer } from "@kitt/testkit";

import { cliEnv, runCli } from "./test-cli.js";

const tempDir = useTempDir(afterEach);
const servers: FakeKittServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const TOKEN = "tok-0123456789abcdef";

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

describe("kitt-agent init", () => {
  it("writes agent.yaml with mode 0600, masks the token, refuses to overwrite without --force", async () => {
    const home = await tempDir();
    const env = cliEnv(home);
    const first = await runCli(["init", "--server", "http://kitt.example:8080/", "--token", TOKEN, "--name", "gpu-01", "--model-dir", "models"], env);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).not.toContain(TOKEN);
    expect(first.stdout).toContain("tok-************");
    const path = join(home, ".kitt", "agent.yaml");
    expect(await modeOf(path)).toBe(0o600);
    const text = await readFile(path, "utf8");
    expect(text).toContain("server_url: http://kitt.example:8080\n");
    expect(text).toContain(`token: ${TOKEN}\n`);
    expect(text).toContain("name: gpu-01\n");
    // A relative flag value is taken from where the command ran, not from ~/.kitt.
    expect(text).toContain(`model_storage_dir: ${join(home, "models")}\n`);

    const again = await runCli(["init", "--server", "http://other:8080", "--token", "x"], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`Error: ${path} already exists (use --force to overwrite it)\n`);
    expect(await readFile(path, "utf8")).toBe(text);

    const forced = await runCli(["init", "--server", "http://other:8080", "--force"], env);
    expect(forced.code).toBe(0);
    expect(await readFile(path, "utf8")).toContain("server_url: http://other:8080\n");
    expect(await modeOf(path)).toBe(0o600);
  });

  it("--json prints one document: what was written with the token masked, and the mTLS outcome", async () => {
    const home = await tempDir();
    const pki = await writeTestPki(join(home, "pki"));
    const r = await runCli(
      ["init", "--server", "https://kitt:8443", "--token", TOKEN, "--name", "gpu-09", "--ca-cert", pki.caCert, "--ca-key", pki.caKey, "--json"],
      cliEnv(home),
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(TOKEN);
    const certs = join(home, ".kitt", "certs");
    const tls = { cert: join(certs, "agent.pem"), key: join(certs, "agent-key.pem"), ca: join(certs, "ca.pem") };
    expect(JSON.parse(r.stdout)).toEqual({
      path: join(home, ".kitt", "agent.yaml"),
      written: { server_url: "https://kitt:8443", token: "tok-************", name: "gpu-09", port: 8090, model_storage_dir: join(home, ".kitt", "models"), tls },
      tls: { kind: "issued", ...tls },
    });
  });

  it("honours --config / KITT_AGENT_CONFIG", async () => {
    const home = await tempDir();
    const path = join(home, "etc", "kitt.yaml");
    const r = await runCli(["init", "--server", "http://k:1"], cliEnv(home, { KITT_AGENT_CONFIG: path }));
    expect(r.code).toBe(0);
    expect(await modeOf(path)).toBe(0o600);
  });

  it.each([
    [["init", "--server", "ftp://x"], /^Error: --server: server_url must be an http\(s\) URL, got "ftp:\/\/x"\n$/],
    [["init", "--server", "http://x", "--name", "bad name"], /^Error: --name: name must be 1-128 letters/],
    [["init", "--server", "http://x", "--port", "70000"], /^Error: Parsing --port: Expected an integer less than or equal to 65535 but received: 70000\n$/],
    [["init"], /^Error: Missing required flag server\n$/],
    [["init", "--server", "http://x", "--bogus"], /^Error: Nonexistent flag: --bogus\n$/],
    [["init", "--server", "http://x", "--ca-cert", "ca.pem"], /^Error: --ca-cert and --ca-key must be given together\n$/],
  ])("rejects %j with exit 2 and one line", async (args, message) => {
    const home = await tempDir();
    const r = await runCli(args, cliEnv(home));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  });

  it("issues a client certificate from the CA that verifies against it and works for mTLS", async () => {
    const home = await tempDir();
    const pki = await writeTestPki(join(home, "pki"));
    const ca = await readFile(pki.caCert, "utf8");
    const server = await startFakeKittServer({
      tls: { cert: await readFile(pki.serverCert, "utf8"), key: await readFile(pki.serverKey, "utf8"), ca },
      agents: [{ name: "gpu-07", token: TOKEN }],
    });
    servers.push(server);
    const r = await runCli(
      ["init", "--server", server.url, "--token", TOKEN, "--name", "gpu-07", "--ca-cert", pki.caCert, "--ca-key", pki.caKey],
      cliEnv(home),
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const certs = join(home, ".kitt", "certs");
    expect(await modeOf(join(certs, "agent-key.pem"))).toBe(0o600);
    const cert = new X509Certificate(await readFile(join(certs, "agent.pem")));
    expect(cert.subject).toBe("CN=gpu-07");
    // The daemon serves its local API with this certificate too: server and client use, local names.
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    expect(cert.subjectAltName).toBe(`DNS:${hostname()}, DNS:localhost, IP Address:127.0.0.1`);
    expect(cert.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(cert.verify(new X509Certificate(ca).publicKey)).toBe(true);
    expect(cert.verify(new X509Certificate(await readFile(pki.otherCaCert)).publicKey)).toBe(false);
    const key = createPrivateKey(await readFile(join(certs, "agent-key.pem")));
    expect(cert.checkPrivateKey(key)).toBe(true);
    const yaml = await readFile(join(home, ".kitt", "agent.yaml"), "utf8");
    expect(yaml).toContain(`cert: ${join(certs, "agent.pem")}`);
    expect(yaml).toContain(`ca: ${join(certs, "ca.pem")}`);

    // The issued pair gets through the server's client-certificate check.
    const client = new KittServerClient({
      serverUrl: server.url,
      token: TOKEN,
      tls: { ca, cert: await readFile(join(certs, "agent.pem")), key: await readFile(join(certs, "agent-key.pem")) },
      retries: 0,
    });
    try {
      expect(await client.health()).toEqual({ status: "ok" });
    } finally {
      client.close();
    }
    expect(server.requests.at(-1)?.clientCertCN).toBe("gpu-07");

    // ...and so does the CLI itself, reading the paths from agent.yaml.
    const list = await runCli(["test", "list", "--json"], cliEnv(home));
    expect(list.stderr).toBe("");
    expect(JSON.parse(list.stdout)).toEqual({ items: [], total: 0 });
  });

  it("never replaces an existing key or certificate in ~/.kitt/certs without --force", async () => {
    const home = await tempDir();
    const pki = await writeTestPki(join(home, "pki"));
    const certs = join(home, ".kitt", "certs");
    await mkdir(certs, { recursive: true });
    await writeFile(join(certs, "agent-key.pem"), "old key\n");
    const args = ["init", "--server", "https://k:1", "--name", "gpu-08", "--ca-cert", pki.caCert, "--ca-key", pki.caKey];
    const refused = await runCli(args, cliEnv(home));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(`Error: ${join(certs, "agent-key.pem")} already exists (use --force to overwrite it)\n`);
    expect(await readFile(join(certs, "agent-key.pem"), "utf8")).toBe("old key\n");
    expect(existsSync(join(home, ".kitt", "agent.yaml"))).toBe(false);

    // The CSR route makes a key too, and an existing certificate counts as well.
    await rm(join(certs, "agent-key.pem"));
    await writeFile(join(certs, "agent.pem"), "old cert\n");
    const csr = await runCli(["init", "--server", "https://k:1", "--name", "gpu-08"], cliEnv(home));
    expect(csr.code).toBe(2);
    expect(csr.stderr).toBe(`Error: ${join(certs, "agent.pem")} already exists (use --force to overwrite it)\n`);
    expect(existsSync(join(certs, "agent-key.pem"))).toBe(false);

    const forced = await runCli([...args, "--force"], cliEnv(home));
    expect(forced.stderr).toBe("");
    expect(forced.code).toBe(0);
    expect(new X509Certificate(await readFile(join(certs, "agent.pem"))).subject).toBe("CN=gpu-08");
  });

  it("refuses a CA key that does not belong to the CA certificate", async () => {
    const home = await tempDir();
    const pki = await writeTestPki(join(home, "pki"));
    const r = await runCli(["init", "--server", "https://k:1", "--ca-cert", pki.otherCaCert, "--ca-key", pki.caKey], cliEnv(home));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`Error: ${pki.caKey} is not the private key of ${pki.otherCaCert}\n`);
  });

  it("records existing certificate files, checking they can be read", async () => {
    const home = await tempDir();
    const pki = await writeTestPki(join(home, "pki"));
    const ok = await runCli(
      ["init", "--server", "https://k:1", "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey, "--tls-ca", pki.caCert],
      cliEnv(home),
    );
    expect(ok.code).toBe(0);
    const yaml = await readFile(join(home, ".kitt", "agent.yaml"), "utf8");
    expect(yaml).toContain(`key: ${pki.clientKey}`);
    const missing = await runCli(["init", "--server", "https://k:1", "--force", "--tls-cert", "nope.pem", "--tls-key", pki.clientKey], cliEnv(home));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`Error: --tls-cert ${join(home, "nope.pem")}: not a readable file\n`);
  });

  it("creates a key and a CSR for an https server without certificates", async () => {
    const home = await tempDir();
    const r = await runCli(["init", "--server", "https://kitt:8443", "--name", "edge-3"], cliEnv(home));
    expect(r.code).toBe(0);
    const certs = join(home, ".kitt", "certs");
    expect(r.stdout).toContain(`Get ${join(certs, "agent.csr")} signed`);
    expect(await modeOf(join(certs, "agent-key.pem"))).toBe(0o600);
    const csr = await readFile(join(certs, "agent.csr"), "utf8");
    expect(csr).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----/);
    // The CSR carries the new key's public half.
    await import("reflect-metadata");
    const { ExtendedKeyUsage, ExtendedKeyUsageExtension, Pkcs10CertificateRequest, SubjectAlternativeNameExtension } = await import("@peculiar/x509");
    const request = new Pkcs10CertificateRequest(csr);
    expect(request.subject).toBe("CN=edge-3");
    const eku = request.getExtension("2.5.29.37");
    const san = request.getExtension("2.5.29.17");
    expect(eku && new ExtendedKeyUsageExtension(eku.rawData).usages).toEqual([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth]);
    expect(san && new SubjectAlternativeNameExtension(san.rawData).names.toJSON()).toEqual([
      { type: "dns", value: hostname() },
      { type: "dns", value: "localhost" },
      { type: "ip", value: "127.0.0.1" },
    ]);
    // The printed signing command keeps those extensions (openssl x509 -req drops them otherwise).
    expect(r.stdout).toContain("-copy_extensions copyall");
    const spki = createPublicKey(createPrivateKey(await readFile(join(certs, "agent-key.pem")))).export({ type: "spki", format: "der" });
    expect(Buffer.from(request.publicKey.rawData).equals(spki)).toBe(true);
    await writeFile(join(home, "unused"), "");
  });
});
