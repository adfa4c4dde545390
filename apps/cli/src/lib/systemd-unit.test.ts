import { spawnSync } from "node:child_process";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { useTempDir } from "@kitt/testkit";

import { renderUnit, systemdWord, type UnitOptions } from "./systemd-unit.js";

const tempDir = useTempDir(afterEach);
const CLI_ENTRY = new URL("../../bin/run.js", import.meta.url).pathname;

function base(overrides: Partial<UnitOptions> = {}): UnitOptions {
  return {
    user: "root",
    home: "/root",
    nodePath: process.execPath,
    cliEntry: CLI_ENTRY,
    configPath: "/root/.kitt/agent.yaml",
    stopTimeoutS: 40,
    ...overrides,
  };
}

/** `systemd-analyze verify` on the unit; any output at all is a finding. */
function verify(unitDir: string, text: string): Promise<{ status: number | null; output: string }> {
  return (async () => {
    const path = join(unitDir, "kitt-agent.service");
    await writeFile(path, text);
    const r = spawnSync("systemd-analyze", ["verify", path], { encoding: "utf8", timeout: 30_000 });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  })();
}

describe("systemdWord", () => {
  it("leaves plain paths alone and quotes and escapes the rest", () => {
    expect(systemdWord("/usr/bin/node")).toBe("/usr/bin/node");
    expect(systemdWord("/opt/my apps/run.js")).toBe('"/opt/my apps/run.js"');
    expect(systemdWord('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(systemdWord("/x/100%/$HOME")).toBe("/x/100%%/$HOME");
    expect(systemdWord("/x/100%/$HOME", { expandsVariables: true })).toBe("/x/100%%/$$HOME");
    expect(() => systemdWord("a\nb")).toThrow(/control characters/);
  });
});

describe("renderUnit", () => {
  it("has what the service needs", () => {
    const text = renderUnit(base());
    for (const line of [
      "After=network-online.target docker.service",
      "Wants=network-online.target docker.service",
      "Type=simple",
      "User=root",
      "Environment=HOME=/root",
      "Environment=KITT_AGENT_CONFIG=/root/.kitt/agent.yaml",
      `ExecStart=${process.execPath} ${CLI_ENTRY} start`,
      "Restart=on-failure",
      "RestartSec=10",
      "TimeoutStopSec=40",
      "LimitNOFILE=65536",
      "WantedBy=multi-user.target",
    ]) {
      expect(text.split("\n")).toContain(line);
    }
  });

  it("refuses relative paths and odd user names", () => {
    expect(() => renderUnit(base({ cliEntry: "bin/run.js" }))).toThrow(/absolute/);
    expect(() => renderUnit(base({ user: "root\nExecStartPre=/bin/evil" }))).toThrow(/user/);
  });

  it("passes systemd-analyze verify without any output", async () => {
    const dir = await tempDir();
    const result = await verify(dir, renderUnit(base()));
    expect(result).toEqual({ status: 0, output: "" });
  });

  it("passes verify with spaces, % and $ in the paths", async () => {
    const dir = await tempDir();
    const odd = join(dir, "my apps", "100% $node");
    await mkdir(odd, { recursive: true });
    await symlink(process.execPath, join(odd, "node"));
    await symlink(CLI_ENTRY, join(odd, "run.js"));
    const text = renderUnit(base({ nodePath: join(odd, "node"), cliEntry: join(odd, "run.js"), home: join(dir, "my apps") }));
    expect(text).toContain('ExecStart="');
    expect(await verify(dir, text)).toEqual({ status: 0, output: "" });
  });
});
