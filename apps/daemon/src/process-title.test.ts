import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

import { useTempDir } from "@kitt/testkit";
import { afterEach, expect, it } from "vitest";

import { closeWorld, makeWorld, type World } from "./test-agent.js";
import { agentReady, killProcessTree, spawnAgent } from "./test-spawn.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
const pids: number[] = [];
afterEach(async () => {
  for (const pid of pids.splice(0)) killProcessTree(pid);
  await Promise.all(worlds.splice(0).map(closeWorld));
});

it("startAgent owning the process (handleSignals) titles it kitt-agent and logs the address it bound, 0.0.0.0:PORT", async () => {
  const w = await makeWorld(await tempDir(), {}, { host: "0.0.0.0" });
  worlds.push(w);
  const configPath = join(w.dir, "config.json");
  await writeFile(configPath, JSON.stringify(w.config));
  const child = spawnAgent(configPath);
  pids.push(child.pid ?? 0);
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  const url = await agentReady(child);
  const port = new URL(url).port;
  // Dialled on loopback, bound on every interface: the log says the latter.
  expect(url).toBe(`http://127.0.0.1:${port}`);
  const msgs = () =>
    out
      .split("\n")
      .filter((l) => l.startsWith("{") && l.endsWith("}"))
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
  // The logger may flush after READY: wait for the line, bounded.
  for (let i = 0; i < 100 && !msgs().some((m) => m.startsWith("local API listening")); i++) await new Promise((r) => setTimeout(r, 50));
  expect(msgs()).toContainEqual(expect.stringMatching(new RegExp(`^local API listening on 0\\.0\\.0\\.0:${port} \\(http://127\\.0\\.0\\.1:${port} from this host;`)));
  expect(readFileSync(`/proc/${child.pid}/comm`, "utf8")).toBe("kitt-agent\n");
});
