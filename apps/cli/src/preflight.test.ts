import { appendFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { startFakeKittServer, useTempDir, writeTestPki, type FakeKittServer } from "@kitt/testkit";

import { cliEnv, fakeBin, runCli } from "./test-cli.js";
import { startFakeDockerEngine, type FakeDockerEngine } from "./test-docker.js";

const tempDir = useTempDir(afterEach);
const servers: FakeKittServer[] = [];
const engines: FakeDockerEngine[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const e of engines.splice(0)) await e.close();
});

/** The Docker checks ask the engine at DOCKER_HOST: a fake one with GPUs and the toolkit, or a socket that does not exist. */
async function engine(): Promise<FakeDockerEngine> {
  const e = await startFakeDockerEngine();
  engines.push(e);
  return e;
}
const NO_DOCKER = "unix:///nonexistent/kitt-cli-test/docker.sock";

const SMI_OK = `echo "550.54.15, NVIDIA H100 80GB HBM3"; exit 0`;

interface Check {
  id: string;
  status: string;
  required: boolean;
  detail: string;
}

describe("kitt-agent preflight", () => {
  it("passes with Docker, GPU access, a driver and a reachable server; one JSON document", async () => {
    const home = await tempDir();
    const bin = join(home, "bin");
    const log = join(home, "calls.log");
    await fakeBin(bin, "nvidia-smi", log, SMI_OK);
    const docker = await engine();
    const server = await startFakeKittServer();
    servers.push(server);
    const env = cliEnv(home, { DOCKER_HOST: docker.dockerHost }, [bin]);
    const r = await runCli(["preflight", "--json", "--server", server.url, "--model-dir", join(home, "models")], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { ok: boolean; checks: Check[] };
    expect(doc.ok).toBe(true);
    const byId = Object.fromEntries(doc.checks.map((c) => [c.id, c]));
    expect(byId.docker).toMatchObject({ status: "pass", detail: `Docker server 27.1.1 (API 1.46, linux/amd64) at ${docker.dockerHost}` });
    expect(byId["docker-gpu"]).toMatchObject({ status: "pass", detail: "1 GPU visible inside containers (nvidia/cuda:12.4.1-base-ubuntu22.04)" });
    expect(byId["kitt-image"]).toMatchObject({ status: "pass", required: false, detail: "kitt:latest (linux/amd64, image feedface0123)" });
    expect(docker.requests).toContain("POST /containers/create");
    expect(byId["nvidia-driver"]).toMatchObject({ status: "pass", detail: "driver 550.54.15, 1 GPU (nvidia-smi)" });
    expect(byId.server?.status).toBe("pass");
    expect(server.requests.map((q) => q.path)).toContain("/api/v1/health");
  });

  it("exits 1 when a required check fails, and says which in the table", async () => {
    const home = await tempDir();
    const bin = join(home, "bin");
    const log = join(home, "calls.log");
    await fakeBin(bin, "nvidia-smi", log, SMI_OK);
    const server = await startFakeKittServer();
    servers.push(server);
    const env = cliEnv(home, { DOCKER_HOST: NO_DOCKER }, [bin]);
    const table = await runCli(["preflight", "--server", server.url, "--model-dir", join(home, "models")], env);
    expect(table.code).toBe(1);
    expect(table.stderr).toBe("");
    expect(table.stdout).toMatch(
      /^Docker available +yes +FAIL +Docker is not available at unix:\/\/\/nonexistent\/kitt-cli-test\/docker\.sock: no socket \(is the Docker engine installed and running\?\)$/m,
    );
    expect(table.stdout).toMatch(/^KITT Docker image +no +WARN +not run: Docker is not available$/m);
    expect(table.stdout).toMatch(/^Preflight failed: 2 required checks failed/m);

    const json = await runCli(["preflight", "--json", "--server", server.url, "--model-dir", join(home, "models")], env);
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.stdout) as { ok: boolean; checks: Check[] };
    expect(doc.ok).toBe(false);
    expect(doc.checks.filter((c) => c.status === "fail").map((c) => c.id)).toEqual(["docker", "docker-gpu"]);
  });

  it("takes the server and port from agent.yaml and fails on an unreachable server", async () => {
    const home = await tempDir();
    const bin = join(home, "bin");
    const log = join(home, "calls.log");
    await fakeBin(bin, "nvidia-smi", log, SMI_OK);
    const docker = await engine();
    const server = await startFakeKittServer();
    const url = server.url;
    await server.close();
    const env = cliEnv(home, { DOCKER_HOST: docker.dockerHost }, [bin]);
    expect((await runCli(["init", "--server", url], env)).code).toBe(0);
    await appendFile(join(home, ".kitt", "agent.yaml"), "kitt_image: team/kitt:1.7\n");
    const r = await runCli(["preflight", "--json"], env);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as { checks: Check[] };
    expect(doc.checks.find((c) => c.id === "server")).toMatchObject({ status: "fail", required: true });
    // kitt_image from agent.yaml is the first candidate; the fake engine has only kitt:latest.
    expect(doc.checks.find((c) => c.id === "kitt-image")?.detail).toMatch(/^kitt:latest \(linux\/amd64, image feedface0123\); skipped: .*team\/kitt:1\.7/);
    // The server is the only required check that fails.
    expect(doc.checks.filter((c) => c.status === "fail").map((c) => c.id)).toEqual(["server"]);
  });

  it("--skip leaves checks out (a CI runner without a GPU): SKIPPED, not run, never counted as passed", async () => {
    const home = await tempDir();
    const bin = join(home, "bin");
    const log = join(home, "calls.log");
    await writeFile(log, "");
    // A driver that would fail: skipped, so it must not even be asked.
    await fakeBin(bin, "nvidia-smi", log, "exit 9");
    const docker = await engine();
    const server = await startFakeKittServer();
    servers.push(server);
    const env = cliEnv(home, { DOCKER_HOST: docker.dockerHost }, [bin]);
    const args = ["preflight", "--server", server.url, "--model-dir", join(home, "models"), "--skip", "docker-gpu", "--skip", "nvidia-driver"];
    const json = await runCli([...args, "--json"], env);
    expect(json.stderr).toBe("");
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as { ok: boolean; checks: Check[] };
    expect(doc.ok).toBe(true);
    const byId = Object.fromEntries(doc.checks.map((c) => [c.id, c]));
    expect(byId["docker-gpu"]).toEqual({ id: "docker-gpu", name: "Docker GPU access", required: true, status: "skipped", detail: "not run: skipped" });
    expect(byId["nvidia-driver"]).toMatchObject({ status: "skipped", required: true });
    expect(byId.docker?.status).toBe("pass");
    expect(await readFile(log, "utf8")).toBe("");
    expect(docker.requests).not.toContain("POST /containers/create");

    const table = await runCli(args, env);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^Docker GPU access +yes +SKIPPED +not run: skipped$/m);
    expect(table.stdout).toMatch(/^NVIDIA drivers +yes +SKIPPED +not run: skipped$/m);
    expect(table.stdout).toMatch(/^Preflight passed.* 2 checks skipped \(not run\): docker-gpu, nvidia-driver\.$/m);
    expect(await readFile(log, "utf8")).toBe("");
  });

  it("--skip with a name that is no check: exit 2 and one line listing the valid ones", async () => {
    const home = await tempDir();
    const r = await runCli(["preflight", "--skip", "gpu"], cliEnv(home, { DOCKER_HOST: NO_DOCKER }));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("Error: --skip gpu: no such check (valid: node, docker, docker-gpu, nvidia-driver, nfs, disk, server, port, kitt-image, benchmark-cli)\n");
  });

  it("verifies agent.yaml's token with an authenticated call: FAIL token rejected for a wrong one, no side effect on the server", async () => {
    const home = await tempDir();
    const bin = join(home, "bin");
    await fakeBin(bin, "nvidia-smi", join(home, "calls.log"), SMI_OK);
    const docker = await engine();
    const server = await startFakeKittServer({ agents: [{ name: "gpu-07", token: "right-token-0123456789" }] });
    servers.push(server);
    const env = cliEnv(home, { DOCKER_HOST: docker.dockerHost }, [bin]);
    const config = join(home, ".kitt", "agent.yaml");
    const base = { server_url: server.url, name: "gpu-07", model_storage_dir: join(home, "models") };

    await writeAgentConfig(config, { ...base, token: "wrong-token-0123456789" });
    const wrong = await runCli(["preflight", "--json"], env);
    expect(wrong.code).toBe(1);
    const doc = JSON.parse(wrong.stdout) as { ok: boolean; checks: Check[] };
    expect(doc.checks.find((c) => c.id === "server")).toEqual({
      id: "server",
      name: "Server reachable",
      required: true,
      status: "fail",
      detail: `${server.url} is healthy; token rejected for agent gpu-07 (HTTP 403): check token in agent.yaml`,
    });
    expect(wrong.stdout).not.toContain("wrong-token-0123456789");

    await writeAgentConfig(config, { ...base, token: "right-token-0123456789" });
    const right = await runCli(["preflight"], env);
    expect(right.stdout).toMatch(new RegExp(`^Server reachable +yes +PASS +${server.url.replace(/[.]/g, "\\.")} is healthy; token accepted for agent gpu-07$`, "m"));

    // An unknown name is no error: the first start registers it with this token.
    await writeAgentConfig(config, { ...base, name: "gpu-new", token: "right-token-0123456789" });
    const fresh = await runCli(["preflight", "--json"], env);
    expect((JSON.parse(fresh.stdout) as { checks: Check[] }).checks.find((c) => c.id === "server")).toMatchObject({
      status: "pass",
      detail: `${server.url} is healthy; agent gpu-new is not registered yet: its first start registers it with this token`,
    });
    // Asked without side effects: nothing registered, no heartbeat (that would hand out a queued test), no result stored.
    expect(server.registrations).toEqual([]);
    expect(server.heartbeats).toEqual([]);
    expect(server.results).toEqual([]);
    expect(server.requests.filter((q) => q.method === "POST").map((q) => `${q.path} ${q.headers.authorization ?? ""}`)).toEqual([
      "/api/v1/agents/gpu-07/results Bearer wrong-token-0123456789",
      "/api/v1/agents/gpu-07/results Bearer right-token-0123456789",
      "/api/v1/agents/gpu-new/results Bearer right-token-0123456789",
    ]);
  });

  it("--insecure is accepted as start accepts it: a server certificate from an unknown CA then passes, marked unverified", async () => {
    const home = await tempDir();
    const pki = await writeTestPki(join(home, "pki"));
    const server = await startFakeKittServer({
      tls: { cert: await readFile(pki.serverCert, "utf8"), key: await readFile(pki.serverKey, "utf8"), ca: await readFile(pki.caCert, "utf8"), requestCert: false },
    });
    servers.push(server);
    const env = cliEnv(home, { DOCKER_HOST: NO_DOCKER });
    const args = ["preflight", "--json", "--server", server.url, "--skip", "docker", "--skip", "docker-gpu", "--skip", "nvidia-driver"];
    const strict = JSON.parse((await runCli(args, env)).stdout) as { checks: Check[] };
    expect(strict.checks.find((c) => c.id === "server")).toMatchObject({ status: "fail", detail: expect.stringMatching(/^TLS: certificate signed by an unknown CA/) });
    const r = await runCli([...args, "--insecure"], env);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { checks: Check[] };
    expect(doc.checks.find((c) => c.id === "server")).toMatchObject({ status: "pass", detail: `${new URL(server.url).origin} is healthy (certificate not verified: --insecure)` });
  });
});
