import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";

import { cliEnv, fakeBin, runCli } from "./test-cli.js";
import { closedPort, fakeDaemon, type FakeDaemon } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const daemons: FakeDaemon[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.close();
});

const TOKEN = "status-token-123456";

describe("kitt-agent status", () => {
  it("shows the config with the token masked and says the daemon is not running", async () => {
    const home = await tempDir();
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: "http://kitt:8080", token: TOKEN, name: "gpu-01", port: await closedPort() });
    const r = await runCli(["status", "--json"], cliEnv(home, { KITT_AGENT_UNIT_DIR: join(home, "units") }));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(TOKEN);
    const doc = JSON.parse(r.stdout) as { config: { token: string; name: string }; daemon: { running: boolean }; service: { installed: boolean } };
    expect(doc.config).toMatchObject({ name: "gpu-01", token: "stat************" });
    expect(doc.daemon.running).toBe(false);
    expect(doc.service.installed).toBe(false);
  });

  it("shows what the daemon reports, asked with the token, and the service state", async () => {
    const home = await tempDir();
    const daemon = await fakeDaemon(() => ({
      status: 200,
      body: { name: "gpu-01", running: true, active_containers: 0, active_streams: 1, storage: { used_gb: 12.5, free_gb: 800, model_count: 2 } },
    }));
    daemons.push(daemon);
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: "http://kitt:8080", token: TOKEN, name: "gpu-01", port: daemon.port });
    const units = join(home, "units");
    await mkdir(units);
    await writeFile(join(units, "kitt-agent.service"), "[Service]\n");
    const bin = join(home, "bin");
    await fakeBin(bin, "systemctl", join(home, "calls.log"), `case "$1" in is-active) echo active ;; is-enabled) echo enabled ;; esac`);
    const r = await runCli(["status"], cliEnv(home, { KITT_AGENT_UNIT_DIR: units }, [bin]));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^daemon +running on http:\/\/127\.0\.0\.1:\d+, running a job$/m);
    expect(r.stdout).toMatch(/^storage +2 models, 12.5 GB used, 800 GB free$/m);
    expect(r.stdout).toMatch(/^service +.*kitt-agent.service: enabled, active$/m);
    expect(daemon.calls).toEqual([{ method: "GET", url: "/api/status", authorization: `Bearer ${TOKEN}`, body: undefined }]);
  });

  it("fails with exit 2 and one line without agent.yaml", async () => {
    const home = await tempDir();
    const r = await runCli(["status"], cliEnv(home));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`Error: ${join(home, ".kitt", "agent.yaml")}: not found (run kitt-agent init --server URL first)\n`);
  });
});
