import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeKittServer, useTempDir, type FakeKittServer } from "@kitt/testkit";

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
});
