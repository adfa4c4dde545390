import { describe, it, expect } from "vitest";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { MemoryLogger } from "@kitt/protocol";
import { ModelStore } from "./model-store.js";
import { DURABLE_MARKER, MANIFEST_NAME, parseManifest } from "./manifest.js";
import { LEGACY_NOTE } from "./legacy.js";
import { expectSameTree, GatedCopy, storeFixture, writeModel, type StoreFixture } from "./test-helpers.js";

const QWEN = {
  "hf/Qwen/Qwen3-8B/config.json": '{"model_type":"qwen3"}',
  "hf/Qwen/Qwen3-8B/model-00001-of-00002.safetensors": 300_000,
  "hf/Qwen/Qwen3-8B/model-00002-of-00002.safetensors": 200_000,
  "hf/Qwen/Qwen3-8B/tokenizer/tokenizer.json": 5_000,
};
const SHARE_MODEL = "hf/Qwen/Qwen3-8B";
const REQUEST = "/data/models/hf/Qwen/Qwen3-8B";

async function open(f: StoreFixture, options: Parameters<typeof ModelStore.open>[1] = {}, share = true) {
  return ModelStore.open(
    { modelStorageDir: f.storage, modelShareMount: share ? f.share : "" },
    { mountInfoPath: f.mountinfo, spaceMarginBytes: 0, env: { PATH: "/nonexistent" }, ...options },
  );
}

/** What the original agent did: copy the model directory to `<storage>/<basename>`, keeping mtimes (shutil.copytree). */
function originalCopy(f: StoreFixture, rel: string): string {
  const legacy = path.join(f.storage, path.basename(rel));
  execFileSync("mkdir", ["-p", f.storage]);
  execFileSync("cp", ["-a", path.join(f.share, rel), legacy]);
  return legacy;
}

const inode = async (p: string): Promise<number> => (await stat(p)).ino;

describe("legacy copies of the original agent", () => {
  it("are listed as legacy, not as staged models, and never reused without the share", async () => {
    const f = await storeFixture(QWEN);
    const legacy = originalCopy(f, SHARE_MODEL);
    const store = await open(f, {}, false);
    const usage = await store.usage();
    expect(usage.model_count).toBe(0);
    expect(usage.models).toEqual([]);
    expect(usage.legacy).toEqual([
      expect.objectContaining({ path: legacy, size_bytes: 505_000 + '{"model_type":"qwen3"}'.length, note: LEGACY_NOTE }),
    ]);
    expect(usage.used_bytes).toBeGreaterThanOrEqual(505_000);
    // No share to verify against: not taken for the staged model.
    await expect(store.resolve(REQUEST)).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
    expect(existsSync(path.join(legacy, MANIFEST_NAME))).toBe(false);
  });

  it("a copy that matches the share is adopted with a manifest, moved into place, no byte copied", async () => {
    const f = await storeFixture(QWEN);
    const legacy = originalCopy(f, SHARE_MODEL);
    const before = await inode(path.join(legacy, "model-00001-of-00002.safetensors"));
    const copy = new GatedCopy();
    const logger = new MemoryLogger();
    const store = await open(f, { copyFile: copy.copyFile, logger });
    const lines: string[] = [];
    const model = await store.resolve(REQUEST, { onLog: (l) => lines.push(l) });
    const dest = path.join(f.storage, SHARE_MODEL);
    expect(model).toMatchObject({ path: dest, modelDir: dest, how: "staged" });
    model.release();
    expect(copy.calls).toEqual([]);
    expect(existsSync(legacy)).toBe(false);
    expect(await inode(path.join(dest, "model-00001-of-00002.safetensors"))).toBe(before);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^Adopted ${legacy} \\(moved to ${dest}\\), a copy the original agent left: it matches the share's ${SHARE_MODEL} file for file \\(4 file\\(s\\), `)));
    expect(logger.records.some((r) => r.message.startsWith(`Adopted ${legacy}`))).toBe(true);
    const manifest = parseManifest(await readFile(path.join(dest, MANIFEST_NAME), "utf8"));
    expect(manifest).toMatchObject({ type: "dir", source: SHARE_MODEL, total_bytes: 505_000 + '{"model_type":"qwen3"}'.length });
    await expectSameTree(path.join(f.share, SHARE_MODEL), dest, [MANIFEST_NAME, DURABLE_MARKER]);
    const usage = await store.usage();
    expect(usage.legacy).toEqual([]);
    expect(usage.models.map((m) => m.source)).toEqual([SHARE_MODEL]);
    // Next time it is simply the staged model.
    const again = await store.resolve(REQUEST);
    expect(again.how).toBe("staged");
    again.release();
    expect(copy.calls).toEqual([]);
  });

  it("adopts in place when the model sits at the share's root", async () => {
    const f = await storeFixture({ "Llama-3/config.json": "{}", "Llama-3/w.bin": 10_000 });
    const legacy = originalCopy(f, "Llama-3");
    const before = await inode(path.join(legacy, "w.bin"));
    const copy = new GatedCopy();
    const store = await open(f, { copyFile: copy.copyFile });
    const model = await store.resolve("/data/models/Llama-3");
    expect(model).toMatchObject({ path: legacy, how: "staged" });
    model.release();
    expect(copy.calls).toEqual([]);
    expect(await inode(path.join(legacy, "w.bin"))).toBe(before);
    expect(parseManifest(await readFile(path.join(legacy, MANIFEST_NAME), "utf8"))?.source).toBe("Llama-3");
  });

  it("a copy with a changed file, a missing or an extra one is removed and the model restaged", async () => {
    for (const spoil of ["size", "mtime", "missing", "extra"] as const) {
      const f = await storeFixture(QWEN);
      const legacy = originalCopy(f, SHARE_MODEL);
      const w = path.join(legacy, "model-00002-of-00002.safetensors");
      if (spoil === "size") await appendFile(w, "x");
      if (spoil === "mtime") await utimes(w, new Date(2001, 0, 1), new Date(2001, 0, 1));
      if (spoil === "missing") execFileSync("rm", [w]);
      if (spoil === "extra") await writeFile(path.join(legacy, "stray.txt"), "x");
      const copy = new GatedCopy();
      const store = await open(f, { copyFile: copy.copyFile });
      const lines: string[] = [];
      const model = await store.resolve(REQUEST, { onLog: (l) => lines.push(l) });
      const dest = path.join(f.storage, SHARE_MODEL);
      expect(model, spoil).toMatchObject({ path: dest, how: "copied" });
      model.release();
      expect(copy.calls, spoil).toHaveLength(4);
      expect(existsSync(legacy), spoil).toBe(false);
      expect(lines, spoil).toContainEqual(expect.stringMatching(new RegExp(`^Removing ${legacy}, a copy the original agent left of ${SHARE_MODEL}: it does not match the share \\(.+\\); staging it afresh$`)));
      await expectSameTree(path.join(f.share, SHARE_MODEL), dest, [MANIFEST_NAME, DURABLE_MARKER]);
    }
  });

  it("an unverified copy at the model's own place is restaged in place", async () => {
    const f = await storeFixture({ "Llama-3/config.json": "{}", "Llama-3/w.bin": 10_000 });
    const legacy = originalCopy(f, "Llama-3");
    await appendFile(path.join(legacy, "w.bin"), "changed");
    const copy = new GatedCopy();
    const store = await open(f, { copyFile: copy.copyFile });
    const model = await store.resolve("/data/models/Llama-3");
    expect(model).toMatchObject({ path: legacy, how: "copied" });
    model.release();
    expect(copy.calls).toHaveLength(2);
    await expectSameTree(path.join(f.share, "Llama-3"), legacy, [MANIFEST_NAME, DURABLE_MARKER]);
  });

  it("leaves alone a same-named directory that is no copy of the model, and every other directory", async () => {
    const f = await storeFixture(QWEN);
    await writeModel(f.storage, { "Qwen3-8B/my-notes.txt": "mine", "Qwen3-8B/weights.bin": 10, "other/thing.bin": 10, "notes/todo.txt": "x" });
    const copy = new GatedCopy();
    const store = await open(f, { copyFile: copy.copyFile });
    const model = await store.resolve(REQUEST);
    model.release();
    expect(model.how).toBe("copied");
    expect(await readFile(path.join(f.storage, "Qwen3-8B/my-notes.txt"), "utf8")).toBe("mine");
    expect(existsSync(path.join(f.storage, "other/thing.bin"))).toBe(true);
    // A parent of staged models (hf) and a folder without model files (notes) are no legacy copies.
    expect((await store.usage()).legacy.map((l) => path.basename(l.path)).sort()).toEqual(["Qwen3-8B", "other"]);
    await expect(store.cleanup(path.join(f.storage, "notes"))).rejects.toMatchObject({ code: "CLEANUP_REFUSED" });
    await store.cleanupAll();
    expect(await readFile(path.join(f.storage, "notes/todo.txt"), "utf8")).toBe("x");
  });

  it("are evicted by cleanup, by cleanup_storage's model path and by __cleanup__", async () => {
    const f = await storeFixture({ ...QWEN, "gguf/Small/w.gguf": 1_000, "Big/w.bin": 2_000 });
    const qwen = originalCopy(f, SHARE_MODEL);
    const small = originalCopy(f, "gguf/Small");
    const store = await open(f);
    // cleanup_storage with the job's model path finds the legacy copy by basename.
    expect(await store.findStaged(REQUEST)).toBe(qwen);
    expect(await store.cleanup((await store.findStaged(REQUEST)) ?? "")).toEqual({ removed: qwen, freed_bytes: 505_022 });
    expect(existsSync(qwen)).toBe(false);
    expect(await store.findStaged(REQUEST)).toBeUndefined();
    // __cleanup__: staged models and legacy copies, nothing else of the storage dir's markers.
    const staged = await store.resolve("/data/models/Big");
    staged.release();
    const all = await store.cleanupAll();
    expect(all.removed.sort()).toEqual([path.join(f.storage, "Big"), small].sort());
    expect(all.freed_bytes).toBeGreaterThanOrEqual(3_000);
    const usage = await store.usage();
    expect(usage.legacy).toEqual([]);
    expect(usage.models).toEqual([]);
    expect(existsSync(path.join(f.storage, ".kitt-storage"))).toBe(true);
    // A legacy copy a job runs as a path in storage is kept.
    const again = originalCopy(f, SHARE_MODEL);
    const inUse = await store.resolve(again);
    expect(inUse.how).toBe("storage");
    await expect(store.cleanup(again)).rejects.toMatchObject({ code: "MODEL_IN_USE" });
    expect((await store.cleanupAll()).in_use).toEqual([again]);
    inUse.release();
    expect((await store.cleanupAll()).removed).toEqual([again]);
  });
});
