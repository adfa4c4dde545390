import { describe, it, expect } from "vitest";
import path from "node:path";
import { existsSync } from "node:fs";
import { open as openFile, readFile, stat, truncate, utimes } from "node:fs/promises";
import { ModelStore } from "./model-store.js";
import type { ModelStoreOptions } from "./store-options.js";
import { DURABLE_MARKER, MANIFEST_NAME, readManifest } from "./manifest.js";
import { expectSameTree, leftoversUnder, storeFixture, type StoreFixture } from "./test-helpers.js";

const FILES = { "m/A/config.json": '{"a":1}', "m/A/w1.bin": 300_000, "m/A/w2.bin": 200_000 };

function openStore(f: StoreFixture, bootId: string, options: ModelStoreOptions = {}): Promise<ModelStore> {
  return ModelStore.open(
    { modelStorageDir: f.storage, modelShareMount: f.share },
    { spaceMarginBytes: 0, bootId: async () => bootId, ...options },
  );
}

/** A durability pass that never reaches the disk: what a power cut before it finished leaves. */
const crashBeforeDurable: ModelStoreOptions["makeDurable"] = () => Promise.reject(new Error("power cut"));

/** Zero the last `n` bytes of `file` in place, keeping its size and mtime (what a crash can leave on ext4/XFS). */
async function zeroTail(file: string, n: number): Promise<void> {
  const st = await stat(file);
  const handle = await openFile(file, "r+");
  try {
    await handle.write(Buffer.alloc(n), 0, n, st.size - n);
  } finally {
    await handle.close();
  }
  await utimes(file, st.atime, st.mtime);
}

/** Truncate `file` to `size`, keeping its mtime. */
async function truncateKeepingMtime(file: string, size: number): Promise<void> {
  const st = await stat(file);
  await truncate(file, size);
  await utimes(file, st.atime, st.mtime);
}

/** A gate for a MakeDurableFn: passes wait in it until opened. */
function gatedDurable(): { makeDurable: NonNullable<ModelStoreOptions["makeDurable"]>; open: () => void; entered: Promise<void>; signals: AbortSignal[] } {
  let release!: () => void;
  let enter!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const entered = new Promise<void>((r) => (enter = r));
  const signals: AbortSignal[] = [];
  return {
    signals,
    entered,
    open: () => release(),
    makeDurable: async (_dir, _storage, signal) => {
      signals.push(signal);
      enter();
      await gate;
    },
  };
}

describe("durability off the critical path", () => {
  it("a new copy gets its durable marker in the background, for its own copy id", async () => {
    const f = await storeFixture(FILES);
    const store = await openStore(f, "boot-1");
    const model = await store.resolve("/x/m/A");
    expect(model.how).toBe("copied");
    await store.flush();
    const manifest = await readManifest(model.path);
    expect(manifest).toMatchObject({ boot_id: "boot-1" });
    const marker = JSON.parse(await readFile(path.join(model.path, DURABLE_MARKER), "utf8")) as { copy_id: string };
    expect(marker.copy_id).toBe(manifest?.copy_id);
    expect(existsSync(path.join(model.path, `${DURABLE_MARKER}.tmp`))).toBe(false);
    model.release();
  });

  for (const [what, damage] of [
    ["a file truncated", (dir: string) => truncateKeepingMtime(path.join(dir, "w1.bin"), 4096)],
    ["a file's tail zeroed at the same size", (dir: string) => zeroTail(path.join(dir, "w1.bin"), 70_000)],
  ] as const) {
    it(`after a reboot, a copy without its marker and ${what} is never used: it is copied afresh`, async () => {
      const f = await storeFixture(FILES);
      const before = await openStore(f, "boot-1", { makeDurable: crashBeforeDurable });
      const staged = await before.resolve("/x/m/A");
      staged.release();
      await before.flush();
      expect(existsSync(path.join(staged.path, DURABLE_MARKER))).toBe(false);
      await damage(staged.path);

      const lines: string[] = [];
      const after = await openStore(f, "boot-2");
      const model = await after.resolve("/x/m/A", { onLog: (l) => lines.push(l) });
      expect(model.how).toBe("copied");
      expect(lines.some((l) => l.includes("never made durable") && l.includes("copying it afresh"))).toBe(true);
      await expectSameTree(path.join(f.share, "m/A"), model.path, [MANIFEST_NAME, DURABLE_MARKER]);
      await after.flush();
      expect(existsSync(path.join(model.path, DURABLE_MARKER))).toBe(true);
      model.release();
    });
  }

  it("after a reboot, a copy without its marker is not used as a path in storage nor acquired when the share is gone", async () => {
    const f = await storeFixture(FILES);
    const before = await openStore(f, "boot-1", { makeDurable: crashBeforeDurable });
    const staged = await before.resolve("/x/m/A");
    staged.release();
    await before.flush();

    const gone = await ModelStore.open(
      { modelStorageDir: f.storage, modelShareMount: path.join(f.root, "no-share") },
      { bootId: async () => "boot-2", mountInfoPath: f.mountinfo, runCommand: async () => ({ code: 1, stdout: "", stderr: "no", timedOut: false }) },
    );
    await expect(gone.resolve(path.join(staged.path, "w1.bin"))).rejects.toMatchObject({ code: "MODEL_NOT_FOUND", message: expect.stringContaining("never made durable") });
    await expect(gone.resolve("/x/m/A")).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
    await expect(gone.acquire(staged.path)).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
  });

  it("a copy with its marker is used after a reboot without reading its data again", async () => {
    const f = await storeFixture(FILES);
    const before = await openStore(f, "boot-1");
    const staged = await before.resolve("/x/m/A");
    staged.release();
    await before.flush();
    // Damage only reading the data could notice: the marker vouches for the copy.
    await zeroTail(path.join(staged.path, "w2.bin"), 1000);

    const copies: string[] = [];
    const after = await openStore(f, "boot-2", { copyFile: async (src) => void copies.push(src) });
    const model = await after.resolve("/x/m/A");
    expect(model.how).toBe("staged");
    expect(copies).toEqual([]);
    model.release();
  });

  it("in the same boot, a copy an earlier process left without its marker is used and made durable", async () => {
    const f = await storeFixture(FILES);
    const before = await openStore(f, "boot-1", { makeDurable: crashBeforeDurable });
    (await before.resolve("/x/m/A")).release();
    await before.flush();

    const after = await openStore(f, "boot-1");
    const model = await after.resolve("/x/m/A");
    expect(model.how).toBe("staged");
    await after.flush();
    expect(existsSync(path.join(model.path, DURABLE_MARKER))).toBe(true);
    model.release();
  });

  it("a cleanup during the background pass removes the copy; the pass writes no marker anywhere and flush ends", async () => {
    const f = await storeFixture(FILES);
    const gate = gatedDurable();
    const store = await openStore(f, "boot-1", { makeDurable: gate.makeDurable });
    const model = await store.resolve("/x/m/A");
    await gate.entered;
    // In use: the pass does not make it removable.
    await expect(store.cleanup(model.path)).rejects.toMatchObject({ code: "MODEL_IN_USE" });
    model.release();
    await expect(store.cleanup(model.path)).resolves.toMatchObject({ removed: model.path });
    gate.open();
    await store.flush();
    expect(existsSync(model.path)).toBe(false);
    expect(await leftoversUnder(f.storage)).toEqual([]);
  });

  it("close() waits a bounded time, then abandons the pass; the copy stays usable and is made durable by the next store", async () => {
    const f = await storeFixture(FILES);
    const gate = gatedDurable();
    const store = await openStore(f, "boot-1", { makeDurable: gate.makeDurable });
    const model = await store.resolve("/x/m/A");
    model.release();
    await gate.entered;
    const closing = store.close({ waitMs: 1 });
    // The abandoned pass is told to stop; this one returns once the gate opens.
    await expect.poll(() => gate.signals[0]?.aborted).toBe(true);
    gate.open();
    await expect(closing).resolves.toBe(false);
    expect(existsSync(path.join(model.path, DURABLE_MARKER))).toBe(false);

    const next = await openStore(f, "boot-1");
    await next.flush();
    expect(existsSync(path.join(model.path, DURABLE_MARKER))).toBe(true);
  });
});
