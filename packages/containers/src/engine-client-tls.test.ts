/**
 * DOCKER_HOST=tcp://... with DOCKER_TLS_VERIFY: a stand-in engine on HTTPS
 * that requires a client certificate from the test CA, as dockerd with
 * --tlsverify does; the client takes ca.pem, cert.pem and key.pem from
 * DOCKER_CERT_PATH.
 */
import { copyFile, mkdir } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";

import { UsageError } from "@kitt/protocol";
import { makeTestPki, useTempDir, writeTestPki } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { DockerRuntime } from "./docker-runtime.js";
import { ContainerRuntimeUnavailableError } from "./runtime.js";

const tempDir = useTempDir(afterEach);
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function tlsEngine(): Promise<{ host: string; clients: string[] }> {
  const pki = await makeTestPki();
  const clients: string[] = [];
  const server: Server = createServer({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    clients.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN ?? ""));
    const path = (req.url ?? "").replace(/^\/v\d+\.\d+\//, "/");
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(path === "/version" ? { ApiVersion: "1.41" } : path === "/images/json" ? [{ Id: "sha256:1", RepoTags: ["kitt:latest"], Size: 1 }] : {}));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return { host: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`, clients };
}

/** A DOCKER_CERT_PATH folder with the docker CLI's file names; `client` picks whose certificate. */
async function certDir(client: "client" | "otherClient", ca: "ca" | "otherCa" = "ca"): Promise<string> {
  const pki = await writeTestPki(join(await tempDir(), "pki"));
  const dir = join(await tempDir(), "docker-certs");
  await mkdir(dir);
  await copyFile(ca === "ca" ? pki.caCert : pki.otherCaCert, join(dir, "ca.pem"));
  await copyFile(client === "client" ? pki.clientCert : pki.otherClientCert, join(dir, "cert.pem"));
  await copyFile(client === "client" ? pki.clientKey : pki.otherClientKey, join(dir, "key.pem"));
  return dir;
}

function runtime(env: NodeJS.ProcessEnv): DockerRuntime {
  const rt = new DockerRuntime({ env, callTimeoutMs: 5_000 });
  cleanups.push(() => rt.close());
  return rt;
}

describe("tcp:// with DOCKER_TLS_VERIFY", () => {
  it("verifies the engine against ca.pem and shows cert.pem", async () => {
    const engine = await tlsEngine();
    const rt = runtime({ DOCKER_HOST: engine.host, DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: await certDir("client") });
    expect((await rt.listImages()).map((i) => i.repoTags)).toEqual([["kitt:latest"]]);
    expect(engine.clients).toEqual(["test-agent", "test-agent"]);
  });

  it("a client certificate the engine does not trust: not available, on one line", async () => {
    const engine = await tlsEngine();
    const rt = runtime({ DOCKER_HOST: engine.host, DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: await certDir("otherClient") });
    const err = await rt.listImages().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContainerRuntimeUnavailableError);
    expect((err as Error).message).toMatch(new RegExp(`^Docker is not available at ${engine.host}: TLS: .*\\(are ca\\.pem, cert\\.pem and key\\.pem in DOCKER_CERT_PATH the engine's\\?\\)$`));
    expect(engine.clients).toEqual([]);
  });

  it("an engine whose certificate ca.pem did not sign: not available, the check named", async () => {
    const engine = await tlsEngine();
    const rt = runtime({ DOCKER_HOST: engine.host, DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: await certDir("client", "otherCa") });
    const err = await rt.listImages().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContainerRuntimeUnavailableError);
    expect((err as Error).message).toMatch(new RegExp(`^Docker is not available at ${engine.host}: TLS: .*certificate`));
    expect(engine.clients).toEqual([]);
  });

  it("a cert folder without the files is a usage error naming the file", async () => {
    const empty = await tempDir();
    const rt = runtime({ DOCKER_HOST: "tcp://127.0.0.1:2376", DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: empty });
    const err = await rt.info().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toBe(`DOCKER_TLS_VERIFY is set but ${join(empty, "ca.pem")} cannot be read (ENOENT); set DOCKER_CERT_PATH to the folder with ca.pem, cert.pem and key.pem`);
  });
});
