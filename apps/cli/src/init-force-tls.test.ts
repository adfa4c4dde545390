import { X509Certificate, createPrivateKey } from "node:crypto";
import { copyFile, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { useTempDir, writeTestPki } from "@kitt/testkit";

import { cliEnv, runCli } from "./test-cli.js";
import { closedPort } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);

const SERVER = "https://kitt.example:8443";

async function bytesOf(...paths: string[]): Promise<string[]> {
  return Promise.all(paths.map(async (p) => (await readFile(p)).toString("base64")));
}

async function pairMatches(cert: string, key: string): Promise<boolean> {
  return new X509Certificate(await readFile(cert)).checkPrivateKey(createPrivateKey(await readFile(key)));
}

/** A home with a client pair in ~/.kitt/certs whose key is not the certificate's. */
async function mismatchedHome(): Promise<{ home: string; pki: Awaited<ReturnType<typeof writeTestPki>>; cert: string; key: string }> {
  const home = await tempDir();
  const pki = await writeTestPki(join(home, "pki"));
  const certs = join(home, ".kitt", "certs");
  await mkdir(certs, { recursive: true });
  const cert = join(certs, "agent.pem");
  const key = join(certs, "agent-key.pem");
  await copyFile(pki.clientCert, cert);
  await copyFile(pki.otherClientKey, key);
  return { home, pki, cert, key };
}

describe("init --force on a host with mTLS", () => {
  it("keeps a matching pair byte for byte, and tls.ca, when run again without TLS flags", async () => {
    const home = await tempDir();
    const pki = await writeTestPki(join(home, "pki"));
    const certs = join(home, ".kitt", "certs");
    const files = { cert: join(certs, "agent.pem"), key: join(certs, "agent-key.pem"), ca: join(certs, "ca.pem") };
    const first = await runCli(["init", "--server", SERVER, "--name", "gpu-09", "--ca-cert", pki.caCert, "--ca-key", pki.caKey], cliEnv(home));
    expect(first.stderr).toBe("");
    const before = await bytesOf(files.cert, files.key, files.ca);

    const again = await runCli(["init", "--server", SERVER, "--name", "gpu-09", "--port", "9091", "--force", "--json"], cliEnv(home));
    expect(again.stderr).toBe("");
    expect(again.code).toBe(0);
    const doc = JSON.parse(again.stdout) as { written: { tls: unknown; port: number }; tls: unknown };
    expect(doc.written.port).toBe(9091);
    expect(doc.written.tls).toEqual(files);
    expect(doc.tls).toEqual({ kind: "kept", ...files });
    expect(await bytesOf(files.cert, files.key, files.ca)).toEqual(before);
    expect(await pairMatches(files.cert, files.key)).toBe(true);

    // Files named with --tls-* (outside ~/.kitt/certs) are kept as well; the human output says so.
    const named = await runCli(
      ["init", "--server", SERVER, "--force", "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey, "--tls-ca", pki.caCert],
      cliEnv(home),
    );
    expect(named.code).toBe(0);
    const plain = await runCli(["init", "--server", SERVER, "--force"], cliEnv(home));
    expect(plain.stderr).toBe("");
    expect(plain.stdout).toContain("Kept the client certificate and key already in place");
    const yaml = await readFile(join(home, ".kitt", "agent.yaml"), "utf8");
    expect(yaml).toContain(`cert: ${pki.clientCert}`);
    expect(yaml).toContain(`key: ${pki.clientKey}`);
    expect(yaml).toContain(`ca: ${pki.caCert}`);
    expect(await bytesOf(files.cert, files.key, files.ca)).toEqual(before);
  });

  it("keeps a key still waiting for its certificate and writes a new request for that same key", async () => {
    const home = await tempDir();
    const certs = join(home, ".kitt", "certs");
    const first = await runCli(["init", "--server", SERVER, "--name", "edge-4"], cliEnv(home));
    expect(first.code).toBe(0);
    const [key] = await bytesOf(join(certs, "agent-key.pem"));
    const again = await runCli(["init", "--server", SERVER, "--name", "edge-5", "--force"], cliEnv(home));
    expect(again.stderr).toBe("");
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("kept that key and wrote a new signing request for it");
    expect(await bytesOf(join(certs, "agent-key.pem"))).toEqual([key]);
    await import("reflect-metadata");
    const { Pkcs10CertificateRequest } = await import("@peculiar/x509");
    const request = new Pkcs10CertificateRequest(await readFile(join(certs, "agent.csr"), "utf8"));
    expect(request.subject).toBe("CN=edge-5");
    expect(await request.verify()).toBe(true);
    const spki = (await import("node:crypto")).createPublicKey(createPrivateKey(await readFile(join(certs, "agent-key.pem")))).export({ type: "spki", format: "der" });
    expect(Buffer.from(request.publicKey.rawData).equals(spki)).toBe(true);
  });

  it("refuses a pair in place that does not match (naming both files) and replaces it only as a whole", async () => {
    const { home, pki, cert, key } = await mismatchedHome();
    const before = await bytesOf(cert, key);
    const refused = await runCli(["init", "--server", SERVER, "--force"], cliEnv(home));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(
      `Error: tls.key ${key} does not match tls.cert ${cert}: init --force keeps a matching pair only; give --ca-cert/--ca-key to issue a new pair, or --tls-cert/--tls-key to name a matching one\n`,
    );
    expect(await bytesOf(cert, key)).toEqual(before);

    const named = await runCli(["init", "--server", SERVER, "--force", "--tls-cert", pki.clientCert, "--tls-key", pki.otherClientKey], cliEnv(home));
    expect(named.code).toBe(2);
    expect(named.stderr).toBe(`Error: --tls-key ${pki.otherClientKey} does not match --tls-cert ${pki.clientCert}\n`);

    const issued = await runCli(["init", "--server", SERVER, "--force", "--ca-cert", pki.caCert, "--ca-key", pki.caKey], cliEnv(home));
    expect(issued.stderr).toBe("");
    expect(issued.code).toBe(0);
    expect(await pairMatches(cert, key)).toBe(true);
  });

  it("start and preflight name both files of a pair that does not match, in one line", async () => {
    const { home, cert, key } = await mismatchedHome();
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), {
      server_url: "https://127.0.0.1:1",
      token: "tok-0123456789abcdef",
      name: "gpu-10",
      host: "127.0.0.1",
      port: await closedPort(),
      model_storage_dir: join(home, "models"),
      tls: { cert, key },
    });
    const line = `tls.key ${key} does not match tls.cert ${cert}`;
    const start = await runCli(["start"], cliEnv(home, { NO_COLOR: "1" }));
    expect(start.code).not.toBe(0);
    expect(start.stderr.trimEnd().split("\n")).toContain(`Error: ${line}`);
    expect(start.stderr).not.toMatch(/key values mismatch|\n\s+at /);

    const preflight = await runCli(["preflight", "--json"], cliEnv(home));
    const server = (JSON.parse(preflight.stdout) as { checks: Array<{ id: string; status: string; detail: string }> }).checks.find((c) => c.id === "server");
    expect(server).toMatchObject({ status: "fail", detail: line });
  });
});
