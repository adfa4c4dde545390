import { describe, it, expect } from "vitest";
import path from "node:path";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir } from "node:fs/promises";
import { MemoryLogger } from "@kitt/protocol";
import { ModelStore } from "./model-store.js";
import { STORAGE_MARKER } from "./ownership.js";
import { storeFixture, writeModel, type StoreFixture } from "./test-helpers.js";

const MODEL = { "m/A/w.bin": 1000 };

async function open(f: StoreFixture, options: Parameters<typeof ModelStore.open>[1] = {}) {
  return ModelStore.open(
    { modelStorageDir: f.storage, modelShareMount: f.share },
    { mountInfoPath: f.mountinfo, spaceMarginBytes: 0, ...options },
  );
}

const warnings = (logger: MemoryLogger): string[] => logger.records.filter((r) => r.level === "warn").map((r) => r.message);

describe("a storage dir chosen by the server", () => {
  it("is refused when it is a non-empty directory the agent did not create; the previous dir stays", async () => {
    const f = await storeFixture(MODEL);
    const logger = new MemoryLogger();
    const store = await open(f, { logger });
    const home = path.join(f.root, "home-of-user");
    await writeModel(home, { ".notes.kitt-staging-0123456789ab/todo.txt": "mine", "llama-fake/my.txt": "mine too" });
    const settings = await store.applyServerSettings({ modelStorageDir: home, autoCleanup: false });
    expect(settings).toMatchObject({ modelStorageDir: f.storage, autoCleanup: false });
    await store.applyServerSettings({ modelStorageDir: home, autoCleanup: false });
    expect(warnings(logger)).toEqual([
      `not using ${home} from the server as model storage: it is not empty and the agent did not create it (no ${STORAGE_MARKER} marker); name it in agent.yaml to use it anyway; keeping ${f.storage}`,
    ]);
    const model = await store.resolve("/x/m/A");
    expect(model.path).toBe(path.join(f.storage, "m/A"));
    model.release();
    await store.cleanupAll();
    expect((await readdir(home)).sort()).toEqual([".notes.kitt-staging-0123456789ab", "llama-fake"]);
    expect(await readFile(path.join(home, ".notes.kitt-staging-0123456789ab/todo.txt"), "utf8")).toBe("mine");
    expect(await readFile(path.join(home, "llama-fake/my.txt"), "utf8")).toBe("mine too");
  });

  it("is taken when it does not exist yet, is empty, or carries the marker; agent.yaml's dir always", async () => {
    const f = await storeFixture(MODEL);
    const logger = new MemoryLogger();
    const store = await open(f, { logger });
    const fresh = path.join(f.root, "fresh", "models");
    expect((await store.applyServerSettings({ modelStorageDir: fresh })).modelStorageDir).toBe(fresh);
    expect(existsSync(path.join(fresh, STORAGE_MARKER))).toBe(true);
    const model = await store.resolve("/x/m/A");
    expect(model.path).toBe(path.join(fresh, "m/A"));
    model.release();
    const empty = path.join(f.root, "empty");
    await mkdir(empty);
    expect((await store.applyServerSettings({ modelStorageDir: empty })).modelStorageDir).toBe(empty);
    // Back to the one that now holds a staged model: it has the marker.
    expect((await store.applyServerSettings({ modelStorageDir: fresh })).modelStorageDir).toBe(fresh);
    // agent.yaml's dir, even with a user's file in it (the operator chose it).
    await writeModel(f.storage, { "README.txt": "the operator's" });
    expect((await store.applyServerSettings({ modelStorageDir: f.storage })).modelStorageDir).toBe(f.storage);
    expect(warnings(logger)).toEqual([]);
  });

  it("invalid server settings are ignored with one warning", async () => {
    const f = await storeFixture(MODEL);
    const logger = new MemoryLogger();
    const store = await open(f, { logger });
    for (let i = 0; i < 3; i++) await store.applyServerSettings({ modelStorageDir: "relative/dir", autoCleanup: false });
    expect(store.settings).toMatchObject({ modelStorageDir: f.storage, autoCleanup: true });
    expect(warnings(logger)).toEqual(['ignoring the server\'s storage settings: model_storage_dir must be an absolute path (or start with ~/), got "relative/dir"']);
  });
});

describe("walks over the storage dir", () => {
  it("are bounded in entries and time, and say when they were cut short", async () => {
    const f = await storeFixture(MODEL);
    const files: Record<string, string> = {};
    for (let i = 0; i < 300; i++) files[`big-foreign-tree/d${i % 10}/f${i}`] = "x";
    await writeModel(f.storage, files);
    const byEntries = await open(f, { walk: { maxEntries: 100 } });
    (await byEntries.resolve("/x/m/A")).release();
    const usage = await byEntries.usage();
    expect(usage.partial).toBe("the walk over the storage dir stopped after 100 entries");
    expect((await byEntries.cleanupAll()).partial).toBe("the walk over the storage dir stopped after 100 entries");

    let t = 0;
    const byTime = await open(f, { walk: { maxMs: 2500, now: () => (t += 1000) } });
    expect((await byTime.usage()).partial).toBe("the walk over the storage dir stopped after 2.5 s");

    const whole = await (await open(f)).usage();
    expect(whole.partial).toBeUndefined();
    expect(whole.model_count).toBe(1);
    expect(whole.used_bytes).toBeGreaterThanOrEqual(1300);
  });
});
