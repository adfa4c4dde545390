import { describe, it, expect } from "vitest";
import path from "node:path";
import { readFile, stat, unlink, writeFile } from "node:fs/promises";
import { ModelStore } from "./model-store.js";
import { DURABLE_MARKER, MANIFEST_NAME } from "./manifest.js";
import { markOwned } from "./ownership.js";
import { treeBytes } from "./storage-layout.js";
import { expectSameTree, GatedCopy, leftoversUnder, listFiles, steppingClock, storeFixture, writeModel, type StoreFixture } from "./test-helpers.js";

const MODEL = {
  "m/A/config.json": "{}",
  "m/A/w1.bin": 100_000,
  "m/A/w2.bin": 100_000,
  "m/A/w3.bin": 100_000,
};

async function open(f: StoreFixture, options: Parameters<typeof ModelStore.open>[1] = {}) {
  return ModelStore.open(
    { modelStorageDir: f.storage, modelShareMount: f.share },
    { mountInfoPath: f.mountinfo, spaceMarginBytes: 0, ...options },
  );
}

describe("concurrent resolves", () => {
  it("share one copy", async () => {
    const f = await storeFixture(MODEL);
    const copy = new GatedCopy();
    copy.close();
    const store = await open(f, { copyFile: copy.copyFile });
    const first = store.resolve("/x/m/A");
    await copy.started(1);
    const lines: string[] = [];
    const second = store.resolve("/y/m/A", { onLog: (l) => lines.push(l) });
    copy.open();
    const [a, b] = await Promise.all([first, second]);
    expect(a.path).toBe(b.path);
    expect(copy.calls).toHaveLength(4);
    expect(lines[0]).toBe("Waiting for the copy of A already in progress");
    a.release();
    b.release();
  });

  it("keep the copy going when one of them cancels", async () => {
    const f = await storeFixture(MODEL);
    const copy = new GatedCopy();
    copy.close();
    const store = await open(f, { copyFile: copy.copyFile, copyConcurrency: 1 });
    const ac = new AbortController();
    const leaving = store.resolve("/x/m/A", { signal: ac.signal });
    const staying = store.resolve("/x/m/A");
    await copy.started(1);
    ac.abort();
    await expect(leaving).rejects.toMatchObject({ code: "STAGING_CANCELLED" });
    copy.open();
    const model = await staying;
    await expectSameTree(path.join(f.share, "m/A"), model.path, [MANIFEST_NAME, DURABLE_MARKER]);
    model.release();
  });
});

describe("cancel", () => {
  it("rejects at once and removes the staging directory", async () => {
    const f = await storeFixture(MODEL);
    const copy = new GatedCopy();
    const store = await open(f, { copyFile: copy.copyFile, copyConcurrency: 1 });
    copy.close();
    const ac = new AbortController();
    const pending = store.resolve("/x/m/A", { signal: ac.signal });
    await copy.started(1);
    expect(await leftoversUnder(f.storage)).toHaveLength(1);
    ac.abort();
    await expect(pending).rejects.toMatchObject({ code: "STAGING_CANCELLED", message: "staging of A was cancelled" });
    expect(await leftoversUnder(f.storage)).toEqual([]);
    // The copy held at the gate now runs against a removed directory and must not resurrect it.
    copy.open();
    await copy.settled();
    expect(await leftoversUnder(f.storage)).toEqual([]);
    expect(await store.findStaged("/x/m/A")).toBeUndefined();
    // A later resolve copies everything afresh.
    const model = await store.resolve("/x/m/A");
    expect(model.how).toBe("copied");
    model.release();
  });

  it("refuses an already aborted signal", async () => {
    const f = await storeFixture(MODEL);
    const store = await open(f);
    await expect(store.resolve("/x/m/A", { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: "STAGING_CANCELLED" });
  });
});

describe("incremental update", () => {
  it("copies only changed files and deletes files the share no longer has", async () => {
    const f = await storeFixture(MODEL);
    const store = await open(f);
    const first = await store.resolve("/x/m/A");
    first.release();
    const keptInode = (await stat(path.join(first.path, "w1.bin"))).ino;

    await writeFile(path.join(f.share, "m/A/w2.bin"), Buffer.alloc(50_000, 7)); // changed
    await unlink(path.join(f.share, "m/A/w3.bin")); // gone from the share
    await writeFile(path.join(f.share, "m/A/extra.json"), "{}"); // new
    const copy = new GatedCopy();
    const refreshed = await (await open(f, { copyFile: copy.copyFile })).resolve("/x/m/A", { refresh: true });
    expect(refreshed.how).toBe("copied");
    expect(copy.calls.map((c) => path.basename(c)).sort()).toEqual(["extra.json", "w2.bin"]);
    await expectSameTree(path.join(f.share, "m/A"), refreshed.path, [MANIFEST_NAME, DURABLE_MARKER]);
    expect((await stat(path.join(refreshed.path, "w1.bin"))).ino).toBe(keptInode);
    expect(await leftoversUnder(f.storage)).toEqual([]);
    refreshed.release();
  });

  it("completes a copy without manifest whose files all match the share (nothing in it can be lost)", async () => {
    const f = await storeFixture(MODEL);
    const store = await open(f);
    (await store.resolve("/x/m/A")).release();
    const dest = path.join(f.storage, "m", "A");
    await unlink(path.join(dest, MANIFEST_NAME));
    await unlink(path.join(dest, "w3.bin")); // e.g. the original agent stopped before it
    const keptInode = (await stat(path.join(dest, "w1.bin"))).ino;
    const copy = new GatedCopy();
    const again = await (await open(f, { copyFile: copy.copyFile })).resolve("/x/m/A");
    expect(again.how).toBe("copied");
    expect(copy.calls.map((c) => path.basename(c))).toEqual(["w3.bin"]);
    await expectSameTree(path.join(f.share, "m/A"), dest, [MANIFEST_NAME, DURABLE_MARKER]);
    expect((await stat(path.join(dest, "w1.bin"))).ino).toBe(keptInode);
    again.release();
  });

  it("never replaces a directory it did not stage that holds anything else", async () => {
    const f = await storeFixture({ ...MODEL, "llama-fake/w.bin": 1000 });
    const store = await open(f);
    const refused = { code: "STAGING_FAILED", message: expect.stringContaining("the agent did not stage it (no completion manifest) and it holds") };
    // A user's directory where the share's model would go.
    const userDir = path.join(f.storage, "llama-fake");
    await writeModel(userDir, { "my-notes.txt": "the user's own file" });
    await expect(store.resolve("/data/llama-fake")).rejects.toMatchObject(refused);
    expect(await readFile(path.join(userDir, "my-notes.txt"), "utf8")).toBe("the user's own file");
    // A copy without manifest in which one file differs from the share's.
    (await store.resolve("/x/m/A")).release();
    await unlink(path.join(f.storage, "m/A", MANIFEST_NAME));
    await writeFile(path.join(f.storage, "m/A/w3.bin"), "edited by the user");
    await expect(store.resolve("/x/m/A")).rejects.toMatchObject({ ...refused, message: expect.stringContaining("it holds w3.bin, which is not an unchanged copy") });
    expect(await readFile(path.join(f.storage, "m/A/w3.bin"), "utf8")).toBe("edited by the user");
    expect(await leftoversUnder(f.storage)).toEqual([]);
  });

  it("never takes a copy whose files no longer match its manifest as complete", async () => {
    const f = await storeFixture(MODEL);
    const store = await open(f);
    (await store.resolve("/x/m/A")).release();
    const dest = path.join(f.storage, "m", "A");
    await writeFile(path.join(dest, "w1.bin"), "damaged");
    expect(await store.findStaged("/x/m/A")).toBeUndefined();
    const copy = new GatedCopy();
    const again = await (await open(f, { copyFile: copy.copyFile })).resolve("/x/m/A");
    expect(copy.calls.map((c) => path.basename(c))).toEqual(["w1.bin"]);
    again.release();
  });

  it("with refresh and an unchanged share, copies nothing", async () => {
    const f = await storeFixture(MODEL);
    const store = await open(f);
    (await store.resolve("/x/m/A")).release();
    const copy = new GatedCopy();
    const again = await (await open(f, { copyFile: copy.copyFile })).resolve("/x/m/A", { refresh: true });
    expect(again.how).toBe("staged");
    expect(copy.calls).toEqual([]);
    again.release();
  });

  it("does not replace a copy a running job uses; the refresh falls back to it", async () => {
    const f = await storeFixture(MODEL);
    const store = await open(f);
    const running = await store.resolve("/x/m/A");
    await writeFile(path.join(f.share, "m/A/w2.bin"), "new");
    const lines: string[] = [];
    const again = await store.resolve("/x/m/A", { refresh: true, onLog: (l) => lines.push(l) });
    expect(again).toMatchObject({ how: "staged", path: running.path });
    expect(lines.some((l) => l.includes("a running job uses it"))).toBe(true);
    expect((await readFile(path.join(running.path, "w2.bin"))).length).toBe(100_000);
    running.release();
    again.release();
  });
});

describe("space", () => {
  /** A disk of `capacity` bytes holding exactly what is in the storage dir. */
  const disk = (f: StoreFixture, capacity: number) => async () => capacity - (await treeBytes(f.storage));

  it("fails with needed and free when the disk is too small", async () => {
    const f = await storeFixture(MODEL);
    const store = await open(f, { freeSpace: disk(f, 200_000) });
    const err = await store.resolve("/x/m/A").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "NO_SPACE" });
    expect((err as Error).message).toBe(
      `not enough space to stage A in ${f.storage}: need 0.3 MiB + 0.0 MiB margin, free 0.2 MiB`,
    );
    expect(await leftoversUnder(f.storage)).toEqual([]);
  });

  it("evicts the least recently used unused models first, and says when auto_cleanup is off", async () => {
    const f = await storeFixture({
      ...MODEL,
      "m/B/w.bin": 300_000,
      "m/C/w.bin": 300_000,
      "m/D/w.bin": 300_000,
    });
    const store = await open(f, { freeSpace: disk(f, 800_000), now: steppingClock() });
    const b = await store.resolve("/x/m/B");
    const c = await store.resolve("/x/m/C");
    b.release();
    c.release();
    // B was used after C: C is the least recently used.
    (await store.resolve("/x/m/B")).release();

    const lines: string[] = [];
    const d = await store.resolve("/x/m/D", { onLog: (l) => lines.push(l) });
    expect(lines).toContain("Evicted unused model m/C (0.3 MiB) to make room for D");
    expect((await store.usage()).models.map((m) => m.source).sort()).toEqual(["m/B", "m/D"]);

    // With B and D in use nothing can be evicted for A.
    const held = await store.resolve("/x/m/B");
    const err = await store.resolve("/x/m/A").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "NO_SPACE" });
    store.updateSettings({ autoCleanup: false });
    held.release();
    d.release();
    await expect(store.resolve("/x/m/A")).rejects.toThrow(/\(auto_cleanup is off\)$/);
  });
});

describe("settings at run time", () => {
  it("a resolve in progress keeps the storage dir it started with", async () => {
    const f = await storeFixture(MODEL);
    const copy = new GatedCopy();
    copy.close();
    const store = await open(f, { copyFile: copy.copyFile });
    const pending = store.resolve("/x/m/A");
    await copy.started(1);
    const other = path.join(f.root, "storage2");
    store.updateSettings({ modelStorageDir: other });
    copy.open();
    const model = await pending;
    expect(model.path).toBe(path.join(f.storage, "m", "A"));
    const next = await store.resolve("/x/m/A");
    expect(next.path).toBe(path.join(other, "m", "A"));
    const modelFiles = async (dir: string): Promise<string[]> => (await listFiles(dir)).filter((n) => n !== DURABLE_MARKER);
    expect(await modelFiles(next.path)).toEqual(await modelFiles(model.path));
    model.release();
    next.release();
  });

  it("keeps the old settings when new ones are invalid", async () => {
    const f = await storeFixture(MODEL);
    const store = await open(f);
    expect(() => store.updateSettings({ modelStorageDir: "relative" })).toThrow(/absolute/);
    expect(store.settings.modelStorageDir).toBe(f.storage);
  });
});

describe("startup", () => {
  it("removes staging and trash leftovers of an earlier run", async () => {
    const f = await storeFixture(MODEL);
    const store = await open(f);
    (await store.resolve("/x/m/A")).release();
    const stale = [path.join(f.storage, "m", ".A.kitt-staging-00112233aabb"), path.join(f.storage, ".B.kitt-trash-00112233aabb")];
    for (const s of stale) {
      await writeModel(s, { "half.bin": 10 });
      await markOwned(s);
    }
    // Named like a leftover but without the agent's marker: someone else's, left alone.
    const foreign = path.join(f.storage, ".notes.kitt-staging-0123456789ab");
    await writeModel(foreign, { "todo.txt": "mine" });
    expect(await leftoversUnder(f.storage)).toHaveLength(3);
    await open(f);
    expect(await leftoversUnder(f.storage)).toEqual([foreign]);
    expect(await listFiles(path.join(f.storage, "m", "A"))).toContain("w1.bin");
  });
});
