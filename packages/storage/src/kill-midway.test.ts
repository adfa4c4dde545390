import { describe, it, expect } from "vitest";
import path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { cp } from "node:fs/promises";
import { ModelStore } from "./model-store.js";
import { DURABLE_MARKER, MANIFEST_NAME } from "./manifest.js";
import { OWNER_MARKER } from "./ownership.js";
import { expectSameTree, GatedCopy, leftoversUnder, listFiles, storeFixture, writeModel } from "./test-helpers.js";

const here = path.dirname(fileURLToPath(import.meta.url));

/** Run the staging child until it prints "ready", then SIGKILL it. Returns the lines it printed. */
function stageAndKill(
  share: string,
  storage: string,
  modelPath: string,
  stopAfter: number,
  mode = "",
): Promise<{ lines: string[]; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", path.join(here, "test-ts-hooks.mjs"), path.join(here, "test-stage-child.ts"), share, storage, modelPath, String(stopAfter), mode],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const lines: string[] = [];
    let stderr = "";
    let buffered = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      buffered += d;
      const parts = buffered.split("\n");
      buffered = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (line === "ready") child.kill("SIGKILL");
      }
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (signal === "SIGKILL") resolve({ lines, signal });
      else reject(new Error(`child exited with ${code} before being killed: ${stderr}`));
    });
  });
}

describe("a copy killed midway", () => {
  it("is never taken for a complete model, and the next resolve recopies", async () => {
    const files: Record<string, number> = {};
    for (let i = 1; i <= 6; i++) files[`hf/org/Big-Model/shard-${i}.bin`] = 200_000;
    const f = await storeFixture(files);

    const { lines } = await stageAndKill(f.share, f.storage, "/data/hf/org/Big-Model", 3);
    expect(lines).toEqual(["copied 1", "copied 2", "copied 3", "ready"]);

    // Killed mid-file: a staging dir with three whole files and half a fourth, no manifest, no model.
    const dest = path.join(f.storage, "hf", "org", "Big-Model");
    const [staging] = await leftoversUnder(f.storage);
    expect(staging).toBeDefined();
    // Its owner marker, written before any file, lets the next start remove it.
    expect(await listFiles(staging ?? "")).toEqual([OWNER_MARKER, "shard-1.bin", "shard-2.bin", "shard-3.bin", "shard-4.bin"]);
    expect(existsSync(path.join(staging ?? "", MANIFEST_NAME))).toBe(false);
    expect(existsSync(dest)).toBe(false);

    const copy = new GatedCopy();
    const store = await ModelStore.open(
      { modelStorageDir: f.storage, modelShareMount: f.share },
      { copyFile: copy.copyFile, spaceMarginBytes: 0 },
    );
    expect(await leftoversUnder(f.storage)).toEqual([]);
    expect(await store.findStaged("/data/hf/org/Big-Model")).toBeUndefined();
    const model = await store.resolve("/data/hf/org/Big-Model");
    expect(model).toMatchObject({ how: "copied", path: dest });
    expect(copy.calls).toHaveLength(6);
    await expectSameTree(path.join(f.share, "hf/org/Big-Model"), dest, [MANIFEST_NAME, DURABLE_MARKER]);
    model.release();
  }, 30_000);

  it("while updating a staged copy leaves the old complete copy in place", async () => {
    const files: Record<string, number> = {};
    for (let i = 1; i <= 4; i++) files[`m/X/part-${i}.bin`] = 100_000;
    const f = await storeFixture(files);
    const open = () => ModelStore.open({ modelStorageDir: f.storage, modelShareMount: f.share }, { spaceMarginBytes: 0 });
    const store = await open();
    (await store.resolve("/m/X")).release();
    await store.flush();
    const dest = path.join(f.storage, "m", "X");
    const old = path.join(f.root, "old-copy");
    await cp(dest, old, { recursive: true, preserveTimestamps: true });

    // The share changes; the child's refresh is killed halfway through the new files.
    await writeModel(path.join(f.share, "m", "X"), { "part-1.bin": 50_000, "part-2.bin": 50_000, "part-5.bin": 50_000 });
    const { lines } = await stageAndKill(f.share, f.storage, "/m/X", 1, "refresh");
    expect(lines).toEqual(["copied 1", "ready"]);

    // Still the old version, complete and usable.
    const after = await open();
    expect(await after.findStaged("/m/X")).toBe(dest);
    await expectSameTree(old, dest);
    const model = await after.resolve("/m/X", { refresh: true });
    expect(model.how).toBe("copied");
    await expectSameTree(path.join(f.share, "m/X"), dest, [MANIFEST_NAME, DURABLE_MARKER]);
    model.release();
  }, 30_000);
});
