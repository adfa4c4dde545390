import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";

import { BIN, cliEnv, fakeBin, runCli } from "./test-cli.js";

const tempDir = useTempDir(afterEach);

/** A home with agent.yaml, fake sudo (records, then runs the rest) and fake systemctl (records, answers). */
async function setup(systemctlBody = `case "$1" in is-active) echo active; exit 0 ;; is-enabled) echo enabled; exit 0 ;; esac; exit 0`, path?: (bin: string) => string) {
  const home = await tempDir();
  const bin = join(home, "bin");
  const log = join(home, "calls.log");
  const unitDir = join(home, "units");
  await mkdir(unitDir);
  await fakeBin(bin, "sudo", log, 'exec "$@"');
  await fakeBin(bin, "systemctl", log, systemctlBody);
  await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: "http://kitt:8080", token: "t", name: "gpu-01", cancel_grace_s: 15 });
  const env = cliEnv(home, { KITT_AGENT_UNIT_DIR: unitDir, ...(path !== undefined ? { PATH: path(bin) } : {}) }, [bin]);
  const calls = async (): Promise<string[]> => (existsSync(log) ? (await readFile(log, "utf8")).trimEnd().split("\n") : []);
  return { home, bin, env, unitDir, calls, unit: join(unitDir, "kitt-agent.service"), link: join(unitDir, "multi-user.target.wants", "kitt-agent.service") };
}

describe("kitt-agent service", () => {
  it("installs the unit through sudo, reloads, enables and starts, with this shell's PATH; refuses a second install", async () => {
    // Duplicates, an empty entry and relative ones: the unit gets each absolute entry once.
    const { home, bin, env, calls, unit } = await setup(undefined, (b) => `${b}:${b}::relative/dir:.:/usr/bin:/bin:/usr/bin`);
    const r = await runCli(["service", "install"], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`path     Environment=PATH=${bin}:/usr/bin:/bin (this shell's PATH, so the service finds what preflight found; left out: ${bin}, (empty), relative/dir, ., /usr/bin)\n`);
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
    expect(text).toContain(`Environment=PATH=${bin}:/usr/bin:/bin\n`);

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
    const human = await runCli(["service", "status"], env);
    expect(human.stdout).toBe(`installed  ${unit}\nenabled    enabled\nactive     active\n`);

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
    expect(JSON.parse(gone.stdout)).toEqual({ installed: false, unitPath: unit, active: "not installed", enabled: "not installed" });
    const nothing = await runCli(["service", "uninstall"], env);
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toMatch(/not installed: nothing to do/);
  });

  it("is all or nothing: a failing enable is undone (disabled, removed, reloaded) and the one-line error says what to do", async () => {
    const { env, unit, calls } = await setup(`[ "$1" = enable ] && { echo "Failed to enable unit: Access denied" >&2; exit 1; }; exit 0`);
    const r = await runCli(["service", "install"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `Error: sudo systemctl enable --now kitt-agent.service failed (exit 1): Failed to enable unit: Access denied; removed ${unit} again, nothing is installed; fix the cause above and run kitt-agent service install again\n`,
    );
    expect(existsSync(unit)).toBe(false);
    expect((await calls()).filter((c) => c.startsWith("sudo ")).slice(3)).toEqual([
      "sudo systemctl disable --now kitt-agent.service",
      `sudo rm -f ${unit}`,
      "sudo systemctl daemon-reload",
    ]);
  });

  it("without systemd as PID 1: install removes the unit again and points to kitt-agent start; status and uninstall still answer", async () => {
    const noSystemd = `echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2; echo "Failed to connect to bus: Host is down" >&2; exit 1`;
    const { env, unit, calls } = await setup(noSystemd);
    const r = await runCli(["service", "install"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "Error: sudo systemctl daemon-reload failed (exit 1): System has not been booted with systemd as init system (PID 1). Can't operate.; " +
        `removed ${unit} again, nothing is installed; this machine does not run systemd as PID 1: run the agent under your own supervisor with \`kitt-agent start\` (it stops cleanly on SIGTERM)\n`,
    );
    expect(existsSync(unit)).toBe(false);
    // Nothing was enabled and systemd never loaded it: only the file is taken back.
    expect((await calls()).filter((c) => c.startsWith("sudo ")).slice(2)).toEqual([`sudo rm -f ${unit}`]);

    // A unit file left by hand (half-installed): status never shows a blank field, uninstall removes it.
    await writeFile(unit, "[Service]\nExecStart=/bin/true\n");
    const status = await runCli(["service", "status"], env);
    expect(status.code).toBe(0);
    const why = "unknown (System has not been booted with systemd as init system (PID 1). Can't operate.)";
    expect(status.stdout).toBe(`installed  ${unit}\nenabled    ${why}\nactive     ${why}\n`);
    const u = await runCli(["service", "uninstall"], env);
    expect(u.stderr).toBe("");
    expect(u.code).toBe(0);
    expect(u.stdout.trimEnd().split("\n")).toEqual([
      "disable  not done: sudo systemctl disable --now kitt-agent.service failed (exit 1): System has not been booted with systemd as init system (PID 1). Can't operate.",
      "stop     not done: sudo systemctl stop kitt-agent.service failed (exit 1): System has not been booted with systemd as init system (PID 1). Can't operate.",
      `remove   removed ${unit}`,
      "reload   not done: sudo systemctl daemon-reload failed (exit 1): System has not been booted with systemd as init system (PID 1). Can't operate.",
    ]);
    expect(existsSync(unit)).toBe(false);
  });

  it("uninstall cleans up an enabled service whose unit file is gone; status says so instead of blank fields", async () => {
    const { env, unit, link, calls } = await setup(
      `case "$1" in is-active) echo inactive; exit 3 ;; is-enabled) echo "Failed to get unit file state for kitt-agent.service: No such file or directory" >&2; exit 1 ;; ` +
        `disable) echo "Failed to disable unit: Unit file kitt-agent.service does not exist." >&2; exit 1 ;; stop) echo "Failed to stop kitt-agent.service: Unit kitt-agent.service not loaded." >&2; exit 5 ;; esac; exit 0`,
    );
    await mkdir(dirname(link), { recursive: true });
    await symlink(unit, link);

    const status = await runCli(["service", "status", "--json"], env);
    expect(JSON.parse(status.stdout)).toEqual({
      installed: false,
      unitPath: unit,
      active: "inactive",
      enabled: "unknown (Failed to get unit file state for kitt-agent.service: No such file or directory)",
      problem: `half-installed: ${link} is left but ${unit} is gone; clean up with kitt-agent service uninstall`,
    });
    const human = await runCli(["service", "status"], env);
    for (const line of human.stdout.trimEnd().split("\n")) expect(line).toMatch(/^\w+ +\S/);
    expect(human.stdout).toContain(`installed  no (${unit} does not exist)\n`);

    const r = await runCli(["service", "uninstall"], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`unlink   removed ${link}\n`);
    expect(r.stdout).toContain("reload   systemctl daemon-reload\n");
    expect(existsSync(link) || existsSync(unit)).toBe(false);
    expect(await calls()).toContain(`sudo rm -f ${link}`);
    expect(JSON.parse((await runCli(["service", "status", "--json"], env)).stdout)).toMatchObject({ installed: false, active: "not installed" });
  });

  it("preflight warns when the service would not find benchmark_command on its PATH", async () => {
    const { home, bin, env, unit } = await setup();
    const bench = await fakeBin(bin, "kitt-bench", join(home, "bench.log"));
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: "http://kitt:8080", token: "t", name: "gpu-01", benchmark_command: "kitt-bench" });
    const skip = ["node", "docker", "docker-gpu", "nvidia-driver", "nfs", "disk", "server", "port", "kitt-image"].flatMap((id) => ["--skip", id]);
    const benchCheck = async (): Promise<{ status: string; detail: string }> => {
      const r = await runCli(["preflight", "--json", ...skip], env);
      const doc = JSON.parse(r.stdout) as { checks: Array<{ id: string; status: string; detail: string }> };
      const { status, detail } = doc.checks.find((c) => c.id === "benchmark-cli") as { status: string; detail: string };
      return { status, detail };
    };
    // Not installed: the service would get this shell's PATH, which has it.
    expect(await benchCheck()).toEqual({ status: "pass", detail: `kitt-bench at ${bench}` });
    // Installed from a shell without it (or before units set PATH): a warning naming the fix.
    await writeFile(unit, "[Service]\nEnvironment=PATH=/usr/bin:/bin\n");
    expect(await benchCheck()).toEqual({
      status: "warn",
      detail: `kitt-bench at ${bench}, but the service would not find kitt-bench on its PATH (set in ${unit}: /usr/bin:/bin): set benchmark_command to ${bench}, or reinstall the service from a shell whose PATH has it`,
    });
    await writeFile(unit, "[Service]\nExecStart=/bin/true\n");
    expect((await benchCheck()).detail).toContain(`(systemd's default: ${unit} sets no PATH: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)`);
    await writeFile(unit, `[Service]\nEnvironment="PATH=/usr/bin:${bin}"\n`);
    expect((await benchCheck()).status).toBe("pass");
    // An absolute benchmark_command does not depend on PATH.
    await writeFile(unit, "[Service]\nEnvironment=PATH=/usr/bin:/bin\n");
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: "http://kitt:8080", token: "t", name: "gpu-01", benchmark_command: bench });
    expect((await benchCheck()).status).toBe("pass");
  }, 120_000);
});
