import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeKittServer, useTempDir } from "@kitt/testkit";

import { backgroundCleanup, cliEnv, runCli, startCliBackground } from "./test-cli.js";
import { closedPort } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const { servers, children } = backgroundCleanup(afterEach);

const TOKEN = "title-token-0123456789";

/** A configured home (through `init`, as an operator would) with the agent's API on `host`. */
async function initialised(host: string) {
  const home = await tempDir();
  const server = await startFakeKittServer({ agents: [{ name: "gpu-title", token: TOKEN }] });
  servers.push(server);
  const port = await closedPort();
  const env = cliEnv(home, { KITT_AGENT_TOKEN: TOKEN, KITT_AGENT_UNIT_DIR: join(home, "units") });
  const init = await runCli(["init", "--server", server.url, "--name", "gpu-title", "--host", host, "--port", String(port), "--model-dir", join(home, "models")], env);
  expect(init.stderr).toBe("");
  expect(init.code).toBe(0);
  expect(init.stdout).toMatch(new RegExp(`^ {2}host +${host.replace(/\./g, "\\.")}$`, "m"));
  expect(await readFile(join(home, ".kitt", "agent.yaml"), "utf8")).toContain(`host: ${host}\n`);
  return { home, port, env };
}

describe("the agent process: its title and the address it binds", () => {
  it("binds all interfaces with init --host 0.0.0.0, says 0.0.0.0:PORT, and is called kitt-agent in ps", async () => {
    const { port, env } = await initialised("0.0.0.0");
    const agent = await startCliBackground(["start"], env, /running; local API on/);
    children.push(agent);
    const pid = agent.child.pid ?? 0;
    // The note and the daemon's own log line name the address actually bound, and the URL to dial.
    expect(agent.stderr()).toContain(`running; local API on http://127.0.0.1:${port} (listening on 0.0.0.0:${port};`);
    const listening = agent
      .stdout()
      .split("\n")
      .filter((l) => l.includes("local API listening"))
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(listening).toEqual([expect.stringMatching(new RegExp(`^local API listening on 0\\.0\\.0\\.0:${port} \\(http://127\\.0\\.0\\.1:${port} from this host;`))]);

    // What ps, top (comm) and ps aux / ss (the command line) show.
    expect(readFileSync(`/proc/${pid}/comm`, "utf8")).toBe("kitt-agent\n");
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0+$/, "")).toBe("kitt-agent");
    expect(execFileSync("ps", ["-o", "comm=", "-p", String(pid)], { encoding: "utf8" }).trim()).toBe("kitt-agent");

    // Renamed, it is still recognised as the agent: a second start refuses, stop finds and stops it.
    const second = await runCli(["start"], env);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`^Error: kitt-agent is already running \\(pid ${pid}, `));
    const status = await runCli(["status", "--json"], env);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ configured: true, state: "running", daemon: { running: true } });
    const stop = await runCli(["stop"], env);
    expect(stop.stderr).toBe("");
    expect(stop.code).toBe(0);
    expect(await agent.exit).toBe(0);
    const after = await runCli(["status"], env);
    expect(after.code).toBe(3);
  });

  it("binds only loopback with init --host 127.0.0.1 and says so", async () => {
    const { port, env } = await initialised("127.0.0.1");
    const agent = await startCliBackground(["start"], env, /running; local API on/);
    children.push(agent);
    expect(agent.stderr()).toContain(`running; local API on http://127.0.0.1:${port} (listening on 127.0.0.1:${port};`);
    expect(agent.stdout()).toContain(`local API listening on 127.0.0.1:${port} (`);
    expect((await runCli(["stop"], env)).code).toBe(0);
    await agent.exit;
  });

  it.each([["kitt host"], ["10.0.0.300"], ["[::]"]])("init --host %j is refused with exit 2 and one line", async (host) => {
    const home = await tempDir();
    const r = await runCli(["init", "--server", "http://kitt:8080", "--host", host], cliEnv(home));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `Error: --host: host must be an IP address or host name (0.0.0.0 for all interfaces, 127.0.0.1 for this host only), got ${JSON.stringify(host)}\n`,
    );
  });
});
