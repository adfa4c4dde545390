import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { startFakeKittServer, useTempDir, type FakeKittServer } from "@kitt/testkit";

import { agentPid, alive, backgroundCleanup, cliEnv, runCli, startCliBackground, startOnTerminal, until, type Background } from "./test-cli.js";
import { closedPort } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const servers: FakeKittServer[] = [];
const children: Background[] = [];
const registries: Server[] = [];
const { strays } = backgroundCleanup(afterEach);
afterEach(async () => {
  for (const r of registries.splice(0)) await new Promise((done) => r.close(done));
  for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill("SIGKILL");
  for (const s of servers.splice(0)) await s.close();
});

/** An agent package in the npm pack layout: package/{package.json,bin/run.js,dist/main.js}, gzipped tar. */
async function makePackage(dir: string, version: string, name = "@kitt/cli", manifest: Record<string, unknown> = {}): Promise<Buffer> {
  const root = join(dir, `src-${version}-${name.replace(/\W/g, "")}`);
  const pkg = join(root, "package");
  await mkdir(join(pkg, "bin"), { recursive: true });
  await mkdir(join(pkg, "dist"), { recursive: true });
  await writeFile(join(pkg, "package.json"), JSON.stringify({ name, version, type: "module", ...manifest }));
  await writeFile(join(pkg, "bin", "run.js"), `console.log("kitt-agent ${version}");\n`);
  await writeFile(join(pkg, "dist", "main.js"), "export {};\n");
  const tgz = join(root, "pkg.tgz");
  const r = spawnSync("tar", ["-czf", tgz, "-C", root, "package"], { timeout: 30_000 });
  expect(r.status).toBe(0);
  return readFile(tgz);
}

/** A tarball of arbitrary files under `top/` (a dependency's npm layout, or a Python sdist). */
async function tarOf(dir: string, top: string, files: Record<string, string>): Promise<Buffer> {
  const root = join(dir, `tar-${createHash("sha1").update(JSON.stringify([top, files])).digest("hex").slice(0, 8)}`);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(root, top, path, ".."), { recursive: true });
    await writeFile(join(root, top, path), text);
  }
  const r = spawnSync("tar", ["-czf", join(root, "out.tgz"), "-C", root, top], { timeout: 30_000 });
  expect(r.status).toBe(0);
  return readFile(join(root, "out.tgz"));
}

const sri = (data: Buffer) => `sha512-${createHash("sha512").update(data).digest("base64")}`;

/**
 * A stand-in npm registry on 127.0.0.1: package documents and tarballs,
 * each version listed with the integrity of its tarball unless `integrity`
 * overrides it (a tampered listing).
 */
async function startRegistry() {
  type Listed = { latest?: string; versions: Map<string, { tarball: Buffer; integrity?: string }> };
  const packages = new Map<string, Listed>();
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = decodeURIComponent(req.url ?? "/");
    requests.push(`${req.method} ${url}`);
    const tar = /^\/tarballs\/(.+)\/-\/(\d[^/]*)\.tgz$/.exec(url);
    if (tar?.[1] !== undefined && tar[2] !== undefined) {
      const v = packages.get(tar[1])?.versions.get(tar[2]);
      if (v === undefined) return void res.writeHead(404).end("{}");
      return void res.writeHead(200, { "content-type": "application/octet-stream" }).end(v.tarball);
    }
    const name = url.slice(1);
    const pkg = packages.get(name);
    if (pkg === undefined) return void res.writeHead(404, { "content-type": "application/json" }).end('{"error":"Not found"}');
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const versions = Object.fromEntries(
      [...pkg.versions].map(([version, v]) => [version, { name, version, dist: { tarball: `${base}/tarballs/${name}/-/${version}.tgz`, integrity: v.integrity ?? sri(v.tarball) } }]),
    );
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ name, "dist-tags": pkg.latest !== undefined ? { latest: pkg.latest } : {}, versions }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  registries.push(server);
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`,
    requests,
    publish(name: string, version: string, tarball: Buffer, options: { integrity?: string } = {}) {
      const pkg: Listed = packages.get(name) ?? { versions: new Map() };
      pkg.versions.set(version, { tarball, ...(options.integrity !== undefined ? { integrity: options.integrity } : {}) });
      pkg.latest = version;
      packages.set(name, pkg);
    },
  };
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

  it("against a stock KITT server (the original agent's Python sdist, or a 500): one line says so, nothing changes", async () => {
    const w = await setup();
    w.server.setAgentPackage(await makePackage(w.home, "0.2.0"), "kitt-agent-0.2.0.tgz");
    expect((await runCli(["update"], w.env)).code).toBe(0);
    const before = { current: await w.current(), listing: await w.listing() };
    const hint = "update this agent with kitt-agent update --from-registry [VERSION], or serve a package made by apps/cli/scripts/pack-agent.mjs";

    const sdist = await tarOf(w.home, "kitt_agent-0.4.2", { "PKG-INFO": "Metadata-Version: 2.1\nName: kitt-agent\n", "pyproject.toml": "[project]\nname = 'kitt-agent'\n" });
    w.server.setAgentPackage(sdist, "kitt_agent-0.4.2.tar.gz");
    const python = await runCli(["update"], w.env);
    expect(python.code).toBe(1);
    expect(python.stderr).toBe(`Error: the KITT server offers the original Python agent's package (kitt_agent-0.4.2.tar.gz), not this agent's: nothing changed; ${hint}\n`);
    // Recognised by its name: not even downloaded.
    expect(w.server.requests.filter((r) => r.path === "/api/v1/agent/package")).toHaveLength(1);

    // The same sdist under another name is recognised after the download by what it holds.
    w.server.setAgentPackage(sdist, "agent.tgz");
    const renamed = await runCli(["update"], w.env);
    expect(renamed.code).toBe(1);
    expect(renamed.stderr).toBe(`Error: the KITT server offers the original Python agent's package (a Python sdist, kitt_agent-0.4.2), not this agent's: nothing changed; ${hint}\n`);

    w.server.failNext(10, 500, { error: "Failed to build agent package" }, { method: "GET", path: "/api/v1/agent/package/sha256" });
    const broken = await runCli(["update", "--restart"], w.env);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toBe(
      `Error: the KITT server has no agent package to offer (GET /api/v1/agent/package/sha256 failed with HTTP 500: Failed to build agent package); a stock KITT server only builds the original Python agent's there: ${hint}\n`,
    );
    expect({ current: await w.current(), listing: await w.listing() }).toEqual(before);
  });

  it("--from-registry installs @kitt/cli checked against the registry's integrity, with its dependencies; latest, up to date, refusals, rollback", async () => {
    const w = await setup();
    const reg = await startRegistry();
    reg.publish(
      "kitt-fake-dep",
      "1.0.0",
      await tarOf(w.home, "package", { "package.json": JSON.stringify({ name: "kitt-fake-dep", version: "1.0.0", main: "index.js" }), "index.js": "module.exports = 42;\n" }),
    );
    // A published package as pnpm publishes it, plus what must not matter on the host: dev dependencies and scripts.
    const manifest = { dependencies: { "kitt-fake-dep": "^1.0.0" }, devDependencies: { "@kitt/testkit": "0.1.0" }, scripts: { postinstall: "exit 1" } };
    const v2 = await makePackage(w.home, "0.2.0", "@kitt/cli", manifest);
    reg.publish("@kitt/cli", "0.2.0", v2);
    reg.publish("@kitt/cli", "0.3.0", await makePackage(w.home, "0.3.0", "@kitt/cli", manifest));
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(w.env)) if (!/^npm_/i.test(k)) env[k] = v;
    env.npm_config_cache = join(w.home, "npm-cache");

    const first = await runCli(["update", "--from-registry", "0.2.0", "--registry", reg.url, "--json"], env, { timeoutMs: 120_000 });
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const name2 = `0.2.0-${createHash("sha512").update(v2).digest("hex").slice(0, 12)}`;
    expect(JSON.parse(first.stdout)).toMatchObject({ source: "registry", version: "0.2.0", switched: true, current: name2, registry: reg.url, integrity: sri(v2) });
    expect(await w.current()).toBe(join("versions", name2));
    // Its dependency came from the registry through npm; its scripts and dev dependencies were left out.
    expect(readFileSync(join(w.agentDir, "current", "node_modules", "kitt-fake-dep", "index.js"), "utf8")).toContain("42");
    const installed = JSON.parse(readFileSync(join(w.agentDir, "current", "package.json"), "utf8")) as Record<string, unknown>;
    expect(installed).toMatchObject({ name: "@kitt/cli", version: "0.2.0", dependencies: { "kitt-fake-dep": "^1.0.0" } });
    expect(installed.devDependencies).toBeUndefined();
    expect(installed.scripts).toBeUndefined();
    expect(reg.requests).toContain("GET /kitt-fake-dep");

    const latest = await runCli(["update", "--from-registry", "--registry", reg.url], env, { timeoutMs: 120_000 });
    expect(latest.stderr).toBe("");
    expect(latest.stdout).toMatch(/^Installed @kitt\/cli@0\.3\.0 from http:\/\/127\.0\.0\.1:\d+\/ \(sha512-\S+\.\.\., \d+ bytes\) as 0\.3\.0-[0-9a-f]{12}; previous: 0\.2\.0-/m);
    expect(await w.previous()).toBe(join("versions", name2));
    const name3 = (await w.current())?.replace("versions/", "");

    const tarballGets = () => reg.requests.filter((r) => r.startsWith("GET /tarballs/@kitt/cli/")).length;
    const gets = tarballGets();
    const same = await runCli(["update", "--from-registry", "--registry", reg.url, "--restart"], env);
    expect(same.code).toBe(0);
    expect(same.stdout).toBe(`Already up to date: ${name3}.\nNothing new: the agent is not restarted.\n`);
    expect(tarballGets()).toBe(gets);

    const before = { current: await w.current(), listing: await w.listing() };
    reg.publish("@kitt/cli", "0.4.0", await makePackage(w.home, "0.4.0"), { integrity: sri(Buffer.from("another tarball")) });
    const tampered = await runCli(["update", "--from-registry", "--registry", reg.url], env);
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toMatch(/^Error: @kitt\/cli@0\.4\.0: the tarball's sha512-\S+ does not match the registry's sha512-\S+; nothing changed\n$/);
    reg.publish("@kitt/cli", "0.5.0", await makePackage(w.home, "0.5.0"), { integrity: "sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA=" });
    const unverified = await runCli(["update", "--from-registry", "--registry", reg.url], env);
    expect(unverified.stderr).toBe(`Error: @kitt/cli@0.5.0 on ${reg.url} has no sha512 integrity: refusing an unverified package; nothing changed\n`);
    const missing = await runCli(["update", "--from-registry", "9.9.9", "--registry", reg.url], env);
    expect(missing.stderr).toBe(`Error: ${reg.url} has no @kitt/cli@9.9.9 (latest is 0.5.0)\n`);
    reg.publish("@kitt/cli", "0.6.0", await makePackage(w.home, "0.6.0", "@kitt/cli", { dependencies: { "kitt-no-such-dep": "^1.0.0" } }));
    const depFails = await runCli(["update", "--from-registry", "--registry", reg.url], env, { timeoutMs: 120_000 });
    expect(depFails.code).toBe(1);
    expect(depFails.stderr).toMatch(/^Error: npm install of @kitt\/cli@0\.6\.0's dependencies failed \(exit \d+\): .*; nothing changed\n$/);
    expect({ current: await w.current(), listing: await w.listing() }).toEqual(before);

    const back = await runCli(["update", "--rollback"], env);
    expect(back.code).toBe(0);
    expect(await w.current()).toBe(join("versions", name2));

    const usage = await runCli(["update", "0.3.0"], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe("Error: a VERSION (0.3.0) only goes with --from-registry\n");
    const badVersion = await runCli(["update", "--from-registry", "latest; rm -rf /", "--registry", reg.url], env);
    expect(badVersion.stderr).toBe('Error: VERSION must be an exact version such as 0.2.0, got "latest; rm -rf /"\n');
    const badRegistry = await runCli(["update", "--from-registry", "--registry", "ftp://example"], env);
    expect(badRegistry.stderr).toBe('Error: --registry must be an http(s) URL, got "ftp://example"\n');
  }, 240_000);

  it("--restart never replaces an agent running in the foreground on a terminal", async () => {
    const w = await setup();
    // A real pseudo-terminal: the agent runs as a terminal session would.
    const term = startOnTerminal(["start"], w.env);
    strays.push(term.child.pid ?? 0);
    await until(() => /running; local API on/.test(term.output()) || term.child.exitCode !== null, 45_000, "the agent on a terminal to start");
    expect(term.output()).toMatch(/running; local API on/);
    const pid = await agentPid(w.home);
    strays.push(pid);
    w.server.setAgentPackage(await makePackage(w.home, "0.3.0"), "kitt-agent-0.3.0.tgz");
    const r = await runCli(["update", "--restart"], { ...w.env, KITT_AGENT_UNIT_DIR: join(w.home, "units") });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`the agent \\(pid ${pid}\\) runs in the foreground on a terminal \\(/dev/pts/\\d+\\): not replaced behind its back; stop it \\(Ctrl-C\\) and run kitt-agent start to run the new version`),
    );
    expect(term.child.exitCode).toBeNull();
    expect(alive(pid)).toBe(true);
  });
});
