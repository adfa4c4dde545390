import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeKittServer, useTempDir, type FakeKittServer } from "@kitt/testkit";

import { cliEnv, fakeBin, runCli } from "./test-cli.js";

const tempDir = useTempDir(afterEach);
const servers: FakeKittServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const DOCKER_OK = `case "$1" in info) echo 27.1.1 ;; run) echo "GPU 0: NVIDIA H100" ;; esac; exit 0`;
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
    await fakeBin(bin, "docker", log, DOCKER_OK);
    await fakeBin(bin, "nvidia-smi", log, SMI_OK);
    const server = await startFakeKittServer();
    servers.push(server);
    const r = await runCli(["preflight", "--json", "--server", server.url, "--model-dir", join(home, "models")], cliEnv(home, {}, [bin]));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { ok: boolean; checks: Check[] };
    expect(doc.ok).toBe(true);
    const byId = Object.fromEntries(doc.checks.map((c) => [c.id, c]));
    expect(byId.docker).toMatchObject({ status: "pass", detail: "Docker server 27.1.1" });
    expect(byId["docker-gpu"]?.status).toBe("pass");
    expect(byId["nvidia-driver"]).toMatchObject({ status: "pass", detail: "driver 550.54.15, 1 GPU (nvidia-smi)" });
    expect(byId.server?.status).toBe("pass");
    expect(server.requests.map((q) => q.path)).toContain("/api/v1/health");
  });

  it("exits 1 when a required check fails, and says which in the table", async () => {
    const home = await tempDir();
    const bin = join(home, "bin");
    const log = join(home, "calls.log");
    await fakeBin(bin, "docker", log, `echo "permission denied while trying to connect to the Docker daemon socket" >&2; exit 1`);
    await fakeBin(bin, "nvidia-smi", log, SMI_OK);
    const server = await startFakeKittServer();
    servers.push(server);
    const env = cliEnv(home, {}, [bin]);
    const table = await runCli(["preflight", "--server", server.url, "--model-dir", join(home, "models")], env);
    expect(table.code).toBe(1);
    expect(table.stderr).toBe("");
    expect(table.stdout).toMatch(/^Docker available +yes +FAIL +docker exited with code 1: permission denied.*\(add the user to the docker group\)$/m);
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
    await fakeBin(bin, "docker", log, DOCKER_OK);
    await fakeBin(bin, "nvidia-smi", log, SMI_OK);
    const server = await startFakeKittServer();
    const url = server.url;
    await server.close();
    const env = cliEnv(home, {}, [bin]);
    expect((await runCli(["init", "--server", url], env)).code).toBe(0);
    const r = await runCli(["preflight", "--json"], env);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as { checks: Check[] };
    expect(doc.checks.find((c) => c.id === "server")).toMatchObject({ status: "fail", required: true });
  });
});
