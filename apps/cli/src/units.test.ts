import { mkdir, statfs } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeKittServer, useTempDir } from "@kitt/testkit";

import { backgroundCleanup, cliEnv, runCli, startCliBackground } from "./test-cli.js";
import { writeLocalAgentConfig } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const { servers, children } = backgroundCleanup(afterEach);

const AGENT = "gpu-units";
const TOKEN = "units-token-0123456789";

/** Free bytes of the disk holding `dir`, as the agent counts them (not root's reserve), in GiB with two decimals. */
async function freeGib(dir: string): Promise<number> {
  const st = await statfs(dir);
  return Math.round(((st.bavail * st.bsize) / 1024 ** 3) * 100) / 100;
}

describe("one meaning of GB", () => {
  it("the model disk's free space is the same GiB figure in preflight, status and the heartbeat", async () => {
    const home = await tempDir();
    const models = join(home, "models");
    await mkdir(models, { recursive: true });
    const server = await startFakeKittServer({ agents: [{ name: AGENT, token: TOKEN }] });
    servers.push(server);
    await writeLocalAgentConfig(home, server.url, { name: AGENT, token: TOKEN }, { model_storage_dir: models, heartbeat_interval_s: 10 });
    server.setSettings(AGENT, { model_storage_dir: models, heartbeat_interval_s: "10" });
    const env = cliEnv(home, { NO_COLOR: "1" });

    let before = await freeGib(models);
    const agent = await startCliBackground(["start", "--log-format", "json"], env, /running; local API on/);
    children.push(agent);
    // Other work on this disk moves the figure: measure again until nothing moved it between the brackets.
    for (let attempt = 1; ; attempt++) {
      const seen = server.heartbeats.length;
      await server.waitFor(() => server.heartbeats.length > seen || (seen > 0 && attempt === 1), 30_000);
      const beat = server.heartbeats.at(-1)?.body as { storage_gb_free?: number };
      const status = await runCli(["status"], env);
      const preflight = await runCli(["preflight", "--json", "--skip", "docker", "--skip", "docker-gpu", "--skip", "nvidia-driver"], env);
      const after = await freeGib(models);
      if (before !== after && attempt < 4) {
        before = after;
        continue;
      }
      expect(before).toBe(after);
      const figure = String(before);
      expect(beat.storage_gb_free).toBe(before);
      expect(status.stdout).toMatch(new RegExp(`^storage +0 models, 0 GiB used, ${figure.replace(".", "\\.")} GiB free$`, "m"));
      const disk = (JSON.parse(preflight.stdout) as { checks: Array<{ id: string; detail: string }> }).checks.find((c) => c.id === "disk");
      expect(disk?.detail).toBe(`${figure} GiB free at ${models}`);
      break;
    }
  });
});
