import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { startFakeKittServer, useTempDir, type FakeKittServer } from "@kitt/testkit";

import { cliEnv, runCli, startCliBackground, until, type Background } from "./test-cli.js";
import { closedPort } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const servers: FakeKittServer[] = [];
const children: Background[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill("SIGKILL");
  for (const s of servers.splice(0)) await s.close();
});

/** An agent package in the npm pack layout: package/{package.json,bin/run.js,dist/main.js}, gzipped tar. */
async function makePackage(dir: string, version: string, name = "@kitt/cli"): Promise<Buffer> {
  const root = join(dir, `src-${version}-${name.replace(/\W/g, "")}`);
  const pkg = join(root, "package");
  await mkdir(join(pkg, "bin"), { recursive: true });
  await mkdir(join(pkg, "dist"), { recursive: true });
  await writeFile(join(pkg, "package.json"), JSON.stringify({ name, version, type: "module" }));
  await writeFile(join(pkg, "bin", "run.js"), `console.log("kitt-agent ${version}");\n`);
  await writeFile(join(pkg, "dist", "main.js"), "export {};\n");
  const tgz = join(root, "pkg.tgz");
  const r = spawnSync("tar", ["-czf", tgz, "-C", root, "package"], { timeout: 30_000 });
  expect(r.status).toBe(0);
  return readFile(tgz);
}

async function setup() {
  const home = await tempDir();
  const server = await startFakeKittServer({ agents: [{ name: "gpu-01", token: "tok-update-1" }] });
  servers.push(server);
  await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: server.url, token: "tok-update-1", name: "gpu-01", port: await closedPort() });
  const agentDir = join(home, ".kitt", "agent");
  const current = async (): Promise<string | undefined> => (existsSync(join(agentDir, "current")) ? readlink(join(agentDir, "current")) : undefined);
  const previous = async (): Promise<string | undefined> => (existsSync(join(agentDir, "previous")) ? readlink(join(agentDir, "previous")) : undefined);
  const listing = async (): Promise<string[]> => [
    ...(await readdir(join(agentDir, "versions"))).map((n) => `versions/${n}`),
    ...(existsSync(join(agentDir, "downloads")) ? (await readdir(join(agentDir, "downloads"))).map((n) => `downloads/${n}`) : []),
  ].sort();
  return { home, server, env: cliEnv(home), agentDir, current, previous, listing };
}

describe("kitt-agent update", () => {
  it("installs a verified package, switches current, keeps previous, rolls back", async () => {
    const w = await setup();
    w.server.setAgentPackage(await makePackage(w.home, "0.2.0"), "kitt-agent-0.2.0.tgz");
    const sha2 = w.server.packageDigest().sha256;
    const first = await runCli(["update", "--json"], w.env);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ version: "0.2.0", sha256: sha2, switched: true });
    const v2 = `0.2.0-${sha2.slice(0, 12)}`;
    expect(await w.current()).toBe(join("versions", v2));
    expect(await readFile(join(w.agentDir, "current", "bin", "run.js"), "utf8")).toContain("0.2.0");
    expect(await w.listing()).toEqual([`versions/${v2}`]);

    const same = await runCli(["update"], w.env);
    expect(same.stdout).toMatch(/^Already up to date: /);

    w.server.setAgentPackage(await makePackage(w.home, "0.3.0"), "kitt-agent-0.3.0.tgz");
    const v3 = `0.3.0-${w.server.packageDigest().sha256.slice(0, 12)}`;
    const second = await runCli(["update"], w.env);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`Installed 0.3.0`);
    expect(await w.current()).toBe(join("versions", v3));
    expect(await w.previous()).toBe(join("versions", v2));

    const back = await runCli(["update", "--rollback"], w.env);
    expect(back.code).toBe(0);
    expect(back.stdout).toContain(`current is now ${v2}`);
    expect(await w.current()).toBe(join("versions", v2));
    expect(await w.previous()).toBe(join("versions", v3));

    // Not running, no service: --restart says so instead of guessing.
    const restart = await runCli(["update", "--rollback", "--restart"], { ...w.env, KITT_AGENT_UNIT_DIR: join(w.home, "units") });
    expect(restart.code).toBe(0);
    expect(restart.stdout).toContain("the agent is not running: start it with kitt-agent start");
  });

  it("aborts on a tampered package, a missing digest or a wrong package, changing nothing", async () => {
    const w = await setup();
    w.server.setAgentPackage(await makePackage(w.home, "0.2.0"), "kitt-agent-0.2.0.tgz");
    expect((await runCli(["update"], w.env)).code).toBe(0);
    const before = { current: await w.current(), listing: await w.listing() };

    const good = await makePackage(w.home, "0.9.0");
    w.server.setAgentPackage(good, "kitt-agent-0.9.0.tgz");
    const digest = w.server.packageDigest().sha256;
    const tampered = Buffer.from(good);
    tampered[tampered.length - 20] = (tampered[tampered.length - 20] ?? 0) ^ 0xff;
    w.server.failNext(1, 200, tampered, { method: "GET", path: "/api/v1/agent/package" });
    const bad = await runCli(["update"], w.env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(new RegExp(`^Error: agent package kitt-agent-0.9.0.tgz: sha256 [0-9a-f]{64} does not match the server's ${digest}\\n$`));
    expect({ current: await w.current(), listing: await w.listing() }).toEqual(before);

    w.server.failNext(1, 404, { error: "No agent package" }, { method: "GET", path: "/api/v1/agent/package/sha256" });
    const missing = await runCli(["update"], w.env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^Error: GET \/api\/v1\/agent\/package\/sha256 failed with HTTP 404: No agent package\n$/);
    expect({ current: await w.current(), listing: await w.listing() }).toEqual(before);

    w.server.setAgentPackage(await makePackage(w.home, "1.0.0", "left-pad"), "left-pad-1.0.0.tgz");
    const wrong = await runCli(["update"], w.env);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe('Error: the agent package is "left-pad", not @kitt/cli\n');
    expect({ current: await w.current(), listing: await w.listing() }).toEqual(before);

    w.server.setAgentPackage(Buffer.from("not a tarball at all"), "kitt-agent-2.0.0.tgz");
    const garbage = await runCli(["update"], w.env);
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toMatch(/^Error: tar -xzf kitt-agent-2.0.0.tgz failed \(exit 2\): /);
    expect({ current: await w.current(), listing: await w.listing() }).toEqual(before);
  });

  it("--rollback without a previous version is a usage error", async () => {
    const w = await setup();
    const r = await runCli(["update", "--rollback"], w.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`Error: nothing to roll back to (${join(w.agentDir, "previous")} does not exist)\n`);
  });

  it("--restart stops the running agent and starts the new version in its place", async () => {
    const w = await setup();
    const agent = await startCliBackground(["start"], w.env, /running; local API on/);
    children.push(agent);
    w.server.setAgentPackage(await makePackage(w.home, "0.3.0"), "kitt-agent-0.3.0.tgz");
    const r = await runCli(["update", "--restart"], { ...w.env, KITT_AGENT_UNIT_DIR: join(w.home, "units") });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^stopped pid \d+ and started the new version \(pid \d+, output in .*agent-start\.log\)$/m);
    expect(await agent.exit).toBe(0);
    // The package's bin/run.js only prints its version: seeing it proves the new entry was started.
    const log = join(w.home, ".kitt", "logs", "agent-start.log");
    await until(() => existsSync(log) && readFileSync(log, "utf8").includes("kitt-agent 0.3.0"), 20_000, "the new version to start");
  });
});
