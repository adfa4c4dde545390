import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";

import { BIN, cliEnv, runCli } from "./test-cli.js";

const tempDir = useTempDir(afterEach);
const MODEL = "/data/models/hf/Qwen/Qwen2.5-0.5B-Instruct";
const REL = join("hf", "Qwen", "Qwen2.5-0.5B-Instruct");

/** A model on the "share" big enough that a copy takes a while: 6 shards of 48 MiB of random bytes. */
async function world(shardMiB = 48) {
  const home = await tempDir();
  const src = join(home, "share", REL);
  await mkdir(src, { recursive: true });
  await writeFile(join(src, "config.json"), '{"architectures":["FakeForCausalLM"]}');
  for (let i = 1; i <= 6; i++) {
    const parts: Buffer[] = [];
    for (let m = 0; m < shardMiB; m++) parts.push(randomBytes(1024 * 1024));
    await writeFile(join(src, `model-0000${i}-of-00006.safetensors`), Buffer.concat(parts));
  }
  const storage = join(home, "models");
  await writeAgentConfig(join(home, ".kitt", "agent.yaml"), {
    server_url: "http://kitt:8080",
    token: "t",
    name: "gpu-01",
    model_storage_dir: storage,
    model_share_mount: join(home, "share"),
    model_share_source: "nas:/volume1/models",
    copy_concurrency: 1,
  });
  return { home, src, storage, env: cliEnv(home) };
}

async function treeHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out[relative(dir, path)] = createHash("sha256").update(await readFile(path)).digest("hex");
  }
  return out;
}

async function allNames(dir: string): Promise<string[]> {
  return existsSync(dir) ? ((await readdir(dir, { recursive: true })) as string[]) : [];
}

describe("kitt-agent models", () => {
  it("stage killed with SIGKILL midway leaves nothing listed; staging again completes with identical bytes; evict", async () => {
    const w = await world();
    // Kill it once its staging directory has appeared and before the model is complete.
    const child = spawn(process.execPath, [BIN, "models", "stage", MODEL], { env: w.env, cwd: w.home, stdio: "ignore" });
    const exited = new Promise<void>((r) => child.on("exit", () => r()));
    let staging = false;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const names = await allNames(w.storage);
      if (names.some((n) => n.split("/").some((p) => p.startsWith(".Qwen2.5-0.5B-Instruct")))) {
        staging = true;
        break;
      }
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(staging).toBe(true);
    child.kill("SIGKILL");
    await exited;
    expect(child.signalCode).toBe("SIGKILL");
    expect(existsSync(join(w.storage, REL, ".kitt-manifest.json"))).toBe(false);

    const listed = await runCli(["models", "list", "--json"], w.env);
    expect(listed.stderr).toBe("");
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toMatchObject({ model_count: 0, models: [] });
    // Opening the storage removed the killed copy's leftovers.
    expect((await allNames(w.storage)).filter((n) => n.includes(".Qwen2.5"))).toEqual([]);

    const staged = await runCli(["models", "stage", MODEL], w.env);
    expect(staged.code).toBe(0);
    expect(staged.stdout).toBe(`Staged ${MODEL} at ${join(w.storage, REL)}.\n`);
    const copy = await treeHashes(join(w.storage, REL));
    const source = await treeHashes(w.src);
    for (const [file, hash] of Object.entries(source)) expect(copy[file]).toBe(hash);

    const again = await runCli(["models", "stage", MODEL], w.env);
    expect(again.stdout).toBe(`Already staged at ${join(w.storage, REL)}.\n`);

    const table = await runCli(["models", "list"], w.env);
    expect(table.stdout).toMatch(new RegExp(`^${REL.replace(/\./g, "\\.")} +0\\.28 +\\d{4}-.*Z +no$`, "m"));

    const evicted = await runCli(["models", "evict", REL], w.env);
    expect(evicted.code).toBe(0);
    expect(evicted.stdout).toMatch(/^Evicted .* \(0\.28 GiB freed\)\.\n$/);
    expect(existsSync(join(w.storage, REL))).toBe(false);
    expect(existsSync(w.src)).toBe(true);
  });

  it("evict refuses paths outside storage and bad arguments; --all empties storage", async () => {
    const w = await world(1);
    expect((await runCli(["models", "stage", MODEL], w.env)).code).toBe(0);
    const outside = await runCli(["models", "evict", w.src], w.env);
    expect(outside.code).toBe(1);
    expect(outside.stderr).toMatch(/^Error: refusing to clean up .* is not inside the model storage/);
    expect(existsSync(w.src)).toBe(true);
    const escape = await runCli(["models", "evict", "../share"], w.env);
    expect(escape.code).toBe(1);
    expect(existsSync(join(w.home, "share"))).toBe(true);
    expect((await runCli(["models", "evict"], w.env)).code).toBe(2);
    expect((await runCli(["models", "evict", REL, "--all"], w.env)).code).toBe(2);
    const all = await runCli(["models", "evict", "--all", "--json"], w.env);
    expect(all.code).toBe(0);
    expect(JSON.parse(all.stdout)).toMatchObject({ removed: [join(w.storage, REL)], failed: [] });
    expect(JSON.parse((await runCli(["models", "list", "--json"], w.env)).stdout)).toMatchObject({ model_count: 0 });
  });

  it("a flat copy the original agent left is listed as legacy, adopted by stage when it matches the share, and evictable", async () => {
    const w = await world(1);
    const legacy = join(w.storage, "Qwen2.5-0.5B-Instruct");
    await mkdir(w.storage, { recursive: true });
    execFileSync("cp", ["-a", w.src, legacy]);
    const listed = await runCli(["models", "list"], w.env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^.*: 0 staged, 1 legacy, /);
    expect(listed.stdout).toMatch(/^Legacy copies of the original agent .*\nLEGACY +SIZE_GIB +MODIFIED\nQwen2\.5-0\.5B-Instruct +0\.01 +\d{4}-.*Z$/m);
    const json = JSON.parse((await runCli(["models", "list", "--json"], w.env)).stdout) as { model_count: number; legacy: { path: string }[] };
    expect(json).toMatchObject({ model_count: 0, legacy: [{ path: legacy }] });

    const staged = await runCli(["models", "stage", MODEL], w.env);
    expect(staged.code).toBe(0);
    expect(staged.stderr).toContain(`Adopted ${legacy} (moved to ${join(w.storage, REL)}), a copy the original agent left`);
    expect(staged.stdout).toBe(`Already staged at ${join(w.storage, REL)}.\n`);
    expect(existsSync(legacy)).toBe(false);

    execFileSync("cp", ["-a", w.src, legacy]);
    const evicted = await runCli(["models", "evict", "Qwen2.5-0.5B-Instruct"], w.env);
    expect(evicted.stdout).toMatch(/^Evicted .*Qwen2\.5-0\.5B-Instruct \(0\.01 GiB freed\)\.\n$/);
    expect(existsSync(legacy)).toBe(false);
    expect(existsSync(join(w.storage, REL))).toBe(true);
    execFileSync("cp", ["-a", w.src, legacy]);
    const all = await runCli(["models", "evict", "--all", "--json"], w.env);
    expect((JSON.parse(all.stdout) as { removed: string[] }).removed.sort()).toEqual([legacy, join(w.storage, REL)].sort());
  });

  it("a model not on the share is a one-line error", async () => {
    const w = await world(1);
    const r = await runCli(["models", "stage", "/data/models/hf/Nope/Missing"], w.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: model "\/data\/models\/hf\/Nope\/Missing" not found: .*\n$/);
  });
});
