import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";

import { cliEnv, runCli } from "./test-cli.js";
import { closedPort } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);

const VICTIM_TEXT = "someone else's file\n";

/** A home whose agent.yaml points at an unreachable server: `start` fails at once unless the state dir stops it first. */
async function home(stateName = ".kitt") {
  const dir = await tempDir();
  const state = join(dir, stateName);
  await writeAgentConfig(join(dir, ".kitt", "agent.yaml"), {
    server_url: `http://127.0.0.1:${await closedPort()}`,
    token: "tok-0123456789abcdef",
    name: "gpu-state",
    host: "127.0.0.1",
    port: await closedPort(),
    state_dir: state,
    model_storage_dir: join(dir, "models"),
  });
  const victim = join(dir, "victim.txt");
  await writeFile(victim, VICTIM_TEXT);
  return { dir, state, victim, env: cliEnv(dir) };
}

describe("kitt-agent and a state dir others could plant files in", () => {
  it("start refuses a world-writable state dir with one line naming it, its mode and the fix; nothing is written there", async () => {
    const h = await home("shared-state");
    const state = h.state;
    await mkdir(state);
    await chmod(state, 0o777);
    const r = await runCli(["start"], h.env);
    expect(r.stderr).toBe(`Error: state dir ${state} is mode 0777, writable by group or others: run chmod 700 ${state}\n`);
    expect(r.code).toBe(1);
    expect(await readdir(state)).toEqual([]);
  });

  it("start refuses a link planted at logs/agent.log, leaving its target untouched", async () => {
    const h = await home();
    await mkdir(join(h.state, "logs"), { mode: 0o700 });
    await symlink(h.victim, join(h.state, "logs", "agent.log"));
    const r = await runCli(["start"], h.env);
    expect(r.stderr).toBe(`Error: ${join(h.state, "logs", "agent.log")} is a symbolic link: the agent opens no links in its state dir; remove it\n`);
    expect(r.code).toBe(1);
    expect(await readFile(h.victim, "utf8")).toBe(VICTIM_TEXT);
    expect(existsSync(join(h.state, "agent.pid"))).toBe(false);
  });

  it("stop does not follow a link at agent.pid, nor wait on a FIFO there", async () => {
    const h = await home();
    // Read through the link, this "pid file" would name a live process.
    await writeFile(h.victim, `${process.pid}\n`);
    await symlink(h.victim, join(h.state, "agent.pid"));
    const linked = await runCli(["stop"], h.env);
    expect(linked.stderr).toBe(`Error: ${join(h.state, "agent.pid")} is a symbolic link: the agent opens no links in its state dir; remove it\n`);
    expect(linked.code).toBe(1);

    await rm(join(h.state, "agent.pid"));
    execFileSync("mkfifo", [join(h.state, "agent.pid")]);
    const fifo = await runCli(["stop"], h.env, { timeoutMs: 20_000 });
    expect(fifo.signal).toBeNull();
    expect(fifo.stderr).toBe(`Error: ${join(h.state, "agent.pid")} is not a regular file: remove it\n`);
    expect(fifo.code).toBe(1);
  });
});
