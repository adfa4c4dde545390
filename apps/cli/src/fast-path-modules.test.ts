import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeKittServer, useTempDir } from "@kitt/testkit";

import { backgroundCleanup, cliEnv, runCli, startCliBackground } from "./test-cli.js";
import { writeLocalAgentConfig } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const { servers, children } = backgroundCleanup(afterEach);

/**
 * A `--import` hook for the CLI child: at exit it writes every module URL the
 * process loaded (ESM, CommonJS and node: builtins) and Node's own list of the
 * internal modules it loaded (process.moduleLoadList: undici shows there) to
 * $KITT_TEST_MODULES_OUT.
 */
const HOOK = `
import { writeFileSync } from "node:fs";
import { registerHooks } from "node:module";
const seen = [];
registerHooks({ load(url, context, next) { seen.push(url); return next(url, context); } });
process.on("exit", () => writeFileSync(process.env.KITT_TEST_MODULES_OUT, [...seen, ...process.moduleLoadList].join("\\n")));
`;

async function recordingEnv(home: string): Promise<{ env: NodeJS.ProcessEnv; modules: () => Promise<string[]> }> {
  const hook = join(home, "modules-hook.mjs");
  await writeFile(hook, HOOK);
  const out = join(home, "modules.txt");
  const env = cliEnv(home, { NODE_OPTIONS: `--import ${hook}`, KITT_TEST_MODULES_OUT: out });
  return { env, modules: async () => (await readFile(out, "utf8")).split("\n") };
}

const oclif = (url: string) => /[/\\]@oclif[/\\]/.test(url);

describe("what the fast paths load (the modules the process really loaded)", () => {
  it("status with no daemon: no oclif, no schemas or validators, no server client, no http, tls or child_process, no undici", async () => {
    const home = await tempDir();
    await writeLocalAgentConfig(home, "http://127.0.0.1:9", { name: "gpu-fast", token: "fast-token-0123456789" });
    const { env, modules } = await recordingEnv(home);
    const r = await runCli(["status"], env);
    expect(r.code).toBe(3);
    const loaded = await modules();
    // The hook did see the CLI.
    // One bundled module (scripts/bundle-status.mjs) instead of the report, agent.yaml's loader and js-yaml apart.
    expect(loaded.some((u) => u.endsWith("/dist/lib/status-bundle.js"))).toBe(true);
    expect(loaded.filter((u) => /\/(status-command|status|config)\.js$|js-yaml/.test(u))).toEqual([]);
    expect(loaded.filter(oclif)).toEqual([]);
    expect(loaded.filter((u) => /\/protocol\/dist\/(index|schemas|validate|validators\.generated|client|http-exchange)\.js$/.test(u))).toEqual([]);
    expect(loaded.filter((u) => u === "node:tls" || u === "node:https" || u === "node:crypto")).toEqual([]);
    // Node's bundled undici (behind fetch, Headers, Response): ~50 ms of a run.
    expect(loaded.some((u) => u.startsWith("NativeModule "))).toBe(true);
    expect(loaded.filter((u) => u.includes("undici"))).toEqual([]);
    // Nothing listens on the port (read from /proc/net), so no HTTP client is loaded; no service installed, so no systemctl to run.
    expect(loaded.filter((u) => /^(NativeModule |node:)(http|_http_client|child_process)$/.test(u))).toEqual([]);
  });

  it("start with plain flags runs the daemon without oclif", async () => {
    const home = await tempDir();
    const server = await startFakeKittServer({ agents: [{ name: "gpu-fast", token: "fast-token-0123456789" }] });
    servers.push(server);
    await writeLocalAgentConfig(home, server.url, { name: "gpu-fast", token: "fast-token-0123456789" });
    const { env, modules } = await recordingEnv(home);
    const agent = await startCliBackground(["start", "--log-format", "json"], env, /running; local API on/);
    children.push(agent);
    await server.waitFor(() => server.heartbeats.length >= 1, 30_000);
    agent.child.kill("SIGTERM");
    expect(await agent.exit).toBe(0);
    const loaded = await modules();
    expect(loaded.some((u) => u.endsWith("/daemon/dist/agent.js"))).toBe(true);
    expect(loaded.filter(oclif)).toEqual([]);
  });
});
