import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";

import { BIN, cliEnv, fakeBin, runCli } from "./test-cli.js";

const tempDir = useTempDir(afterEach);

/** A home with agent.yaml, fake sudo (records, then runs the rest) and fake systemctl (records, answers). */
async function setup(systemctlBody = `case "$1" in is-active) echo active; exit 0 ;; is-enabled) echo enabled; exit 0 ;; esac; exit 0`) {
  const home = await tempDir();
  const bin = join(home, "bin");
  const log = join(home, "calls.log");
  const unitDir = join(home, "units");
  await mkdir(unitDir);
  await fakeBin(bin, "sudo", log, 'exec "$@"');
  await fakeBin(bin, "systemctl", log, systemctlBody);
  await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: "http://kitt:8080", token: "t", name: "gpu-01", cancel_grace_s: 15 });
  const env = cliEnv(home, { KITT_AGENT_UNIT_DIR: unitDir }, [bin]);
  const calls = async (): Promise<string[]> => (existsSync(log) ? (await readFile(log, "utf8")).trimEnd().split("\n") : []);
  return { home, env, unitDir, calls, unit: join(unitDir, "kitt-agent.service") };
}

describe("kitt-agent service", () => {
  it("installs the unit through sudo, reloads, enables and starts; refuses a second install", async () => {
    const { home, env, calls, unit } = await setup();
    const r = await runCli(["service", "install"], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const recorded = await calls();
    expect(recorded[0]).toMatch(new RegExp(`^sudo install -m 0644 /.*/kitt-agent.service ${unit}$`));
    expect(recorded.slice(1)).toEqual([
      "sudo systemctl daemon-reload",
      "systemctl daemon-reload",
      "sudo systemctl enable --now kitt-agent.service",
      "systemctl enable --now kitt-agent.service",
    ]);
    const text = await readFile(unit, "utf8");
    expect(text).toContain(`ExecStart=${process.execPath} ${BIN} start\n`);
    expect(text).toContain(`Environment=HOME=${home}\n`);
    expect(text).toContain(`Environment=KITT_AGENT_CONFIG=${join(home, ".kitt", "agent.yaml")}\n`);
    expect(text).toContain("TimeoutStopSec=45\n");

    // The installed file, exactly as written, passes systemd's own checks.
    const verify = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8", timeout: 30_000 });
    expect({ status: verify.status, output: `${verify.stdout}${verify.stderr}` }).toEqual({ status: 0, output: "" });

    const again = await runCli(["service", "install"], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`Error: ${unit} is already installed (run kitt-agent service uninstall first)\n`);
    expect(await calls()).toHaveLength(5);
  });

  it("--no-start enables without starting; status reads systemctl; uninstall stops, disables, removes, reloads", async () => {
    const { env, calls, unit } = await setup();
    expect((await runCli(["service", "install", "--no-start"], env)).code).toBe(0);
    expect(await calls()).toContain("systemctl enable kitt-agent.service");

    const status = await runCli(["service", "status", "--json"], env);
    expect(JSON.parse(status.stdout)).toEqual({ installed: true, unitPath: unit, active: "active", enabled: "enabled" });

    const before = (await calls()).length;
    const r = await runCli(["service", "uninstall"], env);
    expect(r.code).toBe(0);
    expect((await calls()).slice(before)).toEqual([
      "sudo systemctl disable --now kitt-agent.service",
      "systemctl disable --now kitt-agent.service",
      `sudo rm -f ${unit}`,
      "sudo systemctl daemon-reload",
      "systemctl daemon-reload",
    ]);
    expect(existsSync(unit)).toBe(false);
    const gone = await runCli(["service", "status", "--json"], env);
    expect(JSON.parse(gone.stdout)).toMatchObject({ installed: false });
    const nothing = await runCli(["service", "uninstall"], env);
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toMatch(/not installed: nothing to do/);
  });

  it("stops at the first failing step with one line naming the command", async () => {
    const { env, unit } = await setup(`[ "$1" = enable ] && { echo "Failed to enable unit: Access denied" >&2; exit 1; }; exit 0`);
    const r = await runCli(["service", "install"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("Error: sudo systemctl enable --now kitt-agent.service failed (exit 1): Failed to enable unit: Access denied\n");
    expect(existsSync(unit)).toBe(true);
  });
});
