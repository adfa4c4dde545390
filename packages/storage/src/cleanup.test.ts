import { describe, it, expect } from "vitest";
import path from "node:path";
import { mkdir, readFile, readdir, stat, symlink } from "node:fs/promises";
import { MemoryLogger } from "@kitt/protocol";
import { DURABLE_MARKER, MANIFEST_NAME } from "./manifest.js";
import { STORAGE_MARKER, markOwned } from "./ownership.js";
import { existsSync } from "node:fs";
import { ModelStore } from "./model-store.js";
import { treeBytes } from "./storage-layout.js";
import { leftoversUnder, steppingClock, storeFixture, writeModel, type StoreFixture } from "./test-helpers.js";

const MODELS = {
  "hf/Qwen/A/w.bin": 1000,
  "hf/Qwen/B/w.bin": 2000,
  "gguf/c.gguf": 3000,
};

async function open(f: StoreFixture, options: Parameters<typeof ModelStore.open>[1] = {}) {
  return ModelStore.open(
    { modelStorageDir: f.storage, modelShareMount: f.share },
    { mountInfoPath: f.mountinfo, spaceMarginBytes: 0, freeSpace: async () => 5e9, ...options },
  );
}

describe("cleanup", () => {
  it("refuses paths outside storage, the storage dir itself, and symlinks out of it", async () => {
    const f = await storeFixture(MODELS);
    const store = await open(f);
    const outside = path.join(f.root, "precious");
    await writeModel(outside, { "data.txt": "keep me" });
    await symlink(outside, path.join(f.storage, "sneaky"));
    for (const p of [outside, f.storage, f.storage + "/.", path.join(f.storage, "sneaky"), "/"]) {
      await expect(store.cleanup(p)).rejects.toMatchObject({ code: "CLEANUP_REFUSED" });
    }
    await expect(store.cleanup(path.join(f.storage, "missing"))).rejects.toThrow(/no such path/);
    expect(existsSync(path.join(outside, "data.txt"))).toBe(true);
  });

  it("refuses a model in use, removes it after release, and prunes empty parents", async () => {
    const f = await storeFixture(MODELS);
    const store = await open(f);
    const a = await store.resolve("/data/hf/Qwen/A");
    await expect(store.cleanup(a.path)).rejects.toMatchObject({ code: "MODEL_IN_USE" });
    a.release();
    a.release(); // idempotent
    await store.flush(); // the background durability pass adds its marker; measure after it
    const bytes = await treeBytes(a.path);
    expect(bytes).toBeGreaterThan(1000); // the weights and the manifest
    expect(await store.cleanup(a.path)).toEqual({ removed: a.path, freed_bytes: bytes });
    expect(existsSync(a.path)).toBe(false);
    expect(existsSync(path.join(f.storage, "hf"))).toBe(false);
    expect(existsSync(f.storage)).toBe(true);
    expect(await leftoversUnder(f.storage)).toEqual([]);
  });

  it("refuses what staging did not make: a user's directory, a parent of staged models", async () => {
    const f = await storeFixture(MODELS);
    const store = await open(f);
    for (const m of ["/data/hf/Qwen/A", "/data/hf/Qwen/B"]) (await store.resolve(m)).release();
    const notes = path.join(f.storage, "notes");
    await writeModel(notes, { "todo.txt": "mine" });
    for (const p of [notes, path.join(notes, "todo.txt"), path.join(f.storage, "hf"), path.join(f.storage, "hf", "Qwen")]) {
      const err = await store.cleanup(p).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "CLEANUP_REFUSED" });
      expect((err as Error).message).toContain("is not a staged model");
    }
    expect(existsSync(path.join(notes, "todo.txt"))).toBe(true);
    expect((await store.usage()).model_count).toBe(2);
  });

  it("removes a staging leftover given a path in it", async () => {
    const f = await storeFixture(MODELS);
    const store = await open(f);
    const leftover = path.join(f.storage, "hf", ".A.kitt-staging-0123456789ab");
    await writeModel(leftover, { "w.bin": 100, "sub/x.bin": 50 });
    await markOwned(leftover);
    const bytes = await treeBytes(leftover);
    expect(await store.cleanup(path.join(leftover, "sub"))).toEqual({ removed: leftover, freed_bytes: bytes });
    expect(existsSync(leftover)).toBe(false);
    expect(await leftoversUnder(f.storage)).toEqual([]);
  });

  it("never removes a user's folder that is merely named like a staging leftover", async () => {
    const f = await storeFixture(MODELS);
    const notes = path.join(f.storage, ".notes.kitt-staging-0123456789ab");
    await writeModel(notes, { "todo.txt": "mine" });
    const logger = new MemoryLogger();
    const store = await open(f, { logger });
    expect(logger.records.some((r) => r.level === "warn" && r.message.includes(`leaving ${notes} alone`))).toBe(true);
    await expect(store.cleanup(path.join(notes, "todo.txt"))).rejects.toMatchObject({
      code: "CLEANUP_REFUSED",
      message: expect.stringContaining("the agent did not make it"),
    });
    expect((await store.cleanupAll()).removed).toEqual([]);
    expect(await readFile(path.join(notes, "todo.txt"), "utf8")).toBe("mine");
  });

  it("removes a single-file model given the file path", async () => {
    const f = await storeFixture(MODELS);
    const store = await open(f);
    const c = await store.resolve("/data/gguf/c.gguf");
    c.release();
    const result = await store.cleanup(c.path);
    expect(result.removed).toBe(path.dirname(c.path));
    expect(await readdir(f.storage)).toEqual([STORAGE_MARKER]);
  });

  it("an explicitly acquired model is protected like a resolved one", async () => {
    const f = await storeFixture(MODELS);
    const store = await open(f);
    (await store.resolve("/data/hf/Qwen/B")).release();
    const dir = path.join(f.storage, "hf", "Qwen", "B");
    const lease = await store.acquire(path.join(dir, "w.bin"));
    expect(lease.modelDir).toBe(dir);
    await expect(store.cleanup(dir)).rejects.toMatchObject({ code: "MODEL_IN_USE" });
    lease.release();
    await store.cleanup(dir);
    await expect(store.acquire(dir)).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
  });

  it("cleanupAll removes every unused staged model and leftovers, and keeps models in use", async () => {
    const f = await storeFixture(MODELS);
    const store = await open(f);
    const a = await store.resolve("/data/hf/Qwen/A");
    (await store.resolve("/data/hf/Qwen/B")).release();
    (await store.resolve("/data/gguf/c.gguf")).release();
    const leftover = path.join(f.storage, "hf", ".X.kitt-staging-aaaaaaaaaaaa");
    await mkdir(leftover);
    const unknown = path.join(f.storage, "notes");
    await writeModel(unknown, { "readme.txt": "not a staged model" });

    const result = await store.cleanupAll();
    expect(result.in_use).toEqual([a.modelDir]);
    expect(result.removed.sort()).toEqual(
      [leftover, path.join(f.storage, "gguf", "c.gguf"), path.join(f.storage, "hf", "Qwen", "B")].sort(),
    );
    expect(result.failed).toEqual([]);
    expect(existsSync(path.join(a.path, "w.bin"))).toBe(true);
    expect(existsSync(path.join(unknown, "readme.txt"))).toBe(true);
    a.release();
  });
});

describe("usage", () => {
  it("reports used and free space, and each model's size and last use", async () => {
    const f = await storeFixture(MODELS);
    const now = steppingClock(Date.UTC(2025, 5, 1), 60_000);
    const store = await open(f, { now, freeSpace: async () => 123.456 * 1024 ** 3 });
    const a = await store.resolve("/data/hf/Qwen/A");
    (await store.resolve("/data/gguf/c.gguf")).release();
    await store.flush();
    const usage = await store.usage();
    expect(usage).toMatchObject({ storage_dir: f.storage, free_gb: 123.46, model_count: 2 });
    // Every file in storage, the manifests and durable markers (a few hundred bytes each) aside.
    const agentFiles = [MANIFEST_NAME, DURABLE_MARKER].flatMap((name) => [path.join(a.modelDir ?? "", name), path.join(f.storage, "gguf/c.gguf", name)]);
    const manifests = (await Promise.all(agentFiles.map(async (p) => (await stat(p)).size))).reduce((x, y) => x + y, 0);
    expect(usage.used_bytes).toBe((await treeBytes(f.storage)) - manifests);
    expect(usage.partial).toBeUndefined();
    expect(usage.used_bytes).toBeGreaterThan(4000);
    const byName = Object.fromEntries(usage.models.map((m) => [m.source, m]));
    expect(byName["hf/Qwen/A"]).toMatchObject({ size_bytes: 1000, in_use: true, path: a.modelDir });
    expect(byName["gguf/c.gguf"]).toMatchObject({ size_bytes: 3000, in_use: false });
    // Last use comes from the injected clock: the release of c happened after a was leased.
    const lastA = Date.parse(byName["hf/Qwen/A"]?.last_used ?? "");
    const lastC = Date.parse(byName["gguf/c.gguf"]?.last_used ?? "");
    expect(lastA).toBeGreaterThanOrEqual(Date.UTC(2025, 5, 1));
    expect(lastC).toBeGreaterThan(lastA);
    a.release();
  });
});

