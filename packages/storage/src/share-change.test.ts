import { describe, it, expect } from "vitest";
import path from "node:path";
import { appendFile, open as openFile, readFile, rename, utimes } from "node:fs/promises";
import { MemoryLogger } from "@kitt/protocol";
import { sharedCopyPool, type CopyFileFn } from "./copy-pool.js";
import { MAX_COPY_ATTEMPTS } from "./copy-model.js";
import { ModelStore } from "./model-store.js";
import { DURABLE_MARKER, MANIFEST_NAME, readManifest } from "./manifest.js";
import { expectSameTree, GatedCopy, leftoversUnder, storeFixture, type StoreFixture } from "./test-helpers.js";

const MODEL = {
  "m/A/config.json": "{}",
  "m/A/w1.bin": 100_000,
  "m/A/w2.bin": 100_000,
  "m/A/w3.bin": 100_000,
};

const BIG = 32 * 1024 * 1024;
const OLD = new Date(Date.UTC(2024, 0, 1));

async function open(f: StoreFixture, options: Parameters<typeof ModelStore.open>[1] = {}) {
  return ModelStore.open(
    { modelStorageDir: f.storage, modelShareMount: f.share },
    { mountInfoPath: f.mountinfo, spaceMarginBytes: 0, ...options },
  );
}

/** A real copy during which `times` writers (one per call, until used up) overwrite 1 MiB in the middle of the source. */
function copyWithWriter(times: number): { copyFile: CopyFileFn; writes: () => number } {
  let writes = 0;
  const copyFile: CopyFileFn = async (src, dest, mtimeMs) => {
    const copying = sharedCopyPool(4).copyFile(src, dest, mtimeMs);
    if (path.basename(src) === "big.bin" && writes < times) {
      writes++;
      const handle = await openFile(src, "r+");
      try {
        await handle.write(Buffer.alloc(1024 * 1024, writes), 0, 1024 * 1024, BIG / 2);
      } finally {
        await handle.close();
      }
    }
    await copying;
  };
  return { copyFile, writes: () => writes };
}

async function bigFixture(): Promise<StoreFixture> {
  const f = await storeFixture({ "m/B/big.bin": BIG, "m/B/config.json": "{}" });
  // An old mtime, so that the writer's change shows in the mtime whatever the clock's granularity.
  await utimes(path.join(f.share, "m/B/big.bin"), OLD, OLD);
  return f;
}

describe("a share file that changes during its copy", () => {
  it("is copied again and the version copied is what the manifest seals", async () => {
    const f = await storeFixture(MODEL);
    const copy = new GatedCopy();
    copy.close();
    const lines: string[] = [];
    const store = await open(f, { copyFile: copy.copyFile, copyConcurrency: 1 });
    const pending = store.resolve("/x/m/A", { onLog: (l) => lines.push(l) });
    await copy.started(1);
    const changed = path.join(f.share, path.relative(f.share, copy.calls[0] ?? ""));
    await appendFile(changed, "more");
    copy.open();
    const model = await pending;
    expect(model.how).toBe("copied");
    await expectSameTree(path.join(f.share, "m/A"), model.path, [MANIFEST_NAME, DURABLE_MARKER]);
    const manifest = await readManifest(model.path);
    expect(manifest?.files.find((x) => x.path === path.basename(changed))?.size).toBe(100_004);
    expect(manifest?.total_bytes).toBe(300_006);
    expect(lines).toContain(`${path.basename(changed)} changed on the share while it was copied; copying it again (attempt 2 of ${MAX_COPY_ATTEMPTS})`);
    model.release();
  });

  it("written to by another process mid-copy: the staged file is the whole new version, never a mix", async () => {
    const f = await bigFixture();
    const writer = copyWithWriter(1);
    const store = await open(f, { copyFile: writer.copyFile });
    const model = await store.resolve("/x/m/B");
    expect(writer.writes()).toBe(1);
    const [share, staged] = await Promise.all([readFile(path.join(f.share, "m/B/big.bin")), readFile(path.join(model.path, "big.bin"))]);
    expect(share[BIG / 2]).toBe(1);
    expect(staged.equals(share)).toBe(true);
    model.release();
  }, 30_000);

  it("that keeps changing fails the staging; nothing is sealed or left behind", async () => {
    const f = await bigFixture();
    const writer = copyWithWriter(MAX_COPY_ATTEMPTS);
    const store = await open(f, { copyFile: writer.copyFile });
    await expect(store.resolve("/x/m/B")).rejects.toMatchObject({
      code: "STAGING_FAILED",
      message: `${path.join(f.share, "m/B/big.bin")} changed on the share while it was copied, ${MAX_COPY_ATTEMPTS} times in a row; retry when the share is stable`,
    });
    expect(writer.writes()).toBe(MAX_COPY_ATTEMPTS);
    expect(await leftoversUnder(f.storage)).toEqual([]);
    expect(await store.findStaged("/x/m/B")).toBeUndefined();
    // Once the share is stable the next resolve stages it.
    const model = await store.resolve("/x/m/B");
    await expectSameTree(path.join(f.share, "m/B"), model.path, [MANIFEST_NAME, DURABLE_MARKER]);
    model.release();
  }, 30_000);
});

describe("reusing a staged copy", () => {
  it("re-stages the files the share changed since, with a log line", async () => {
    const f = await storeFixture(MODEL);
    (await (await open(f)).resolve("/x/m/A")).release();
    const w2 = path.join(f.share, "m/A/w2.bin");
    const handle = await openFile(w2, "r+");
    await handle.write(Buffer.from("changed"), 0, 7, 500);
    await handle.close();
    await utimes(w2, OLD, OLD); // same size, only the mtime tells
    const copy = new GatedCopy();
    const lines: string[] = [];
    const logger = new MemoryLogger();
    const model = await (await open(f, { copyFile: copy.copyFile, logger })).resolve("/x/m/A", { onLog: (l) => lines.push(l) });
    const line = "m/A changed on the share since it was staged (1 file(s) differ): updating the local copy";
    expect(lines[0]).toBe(line);
    expect(logger.records.some((r) => r.message === line)).toBe(true);
    expect(model.how).toBe("copied");
    expect(copy.calls.map((c) => path.basename(c))).toEqual(["w2.bin"]);
    await expectSameTree(path.join(f.share, "m/A"), model.path, [MANIFEST_NAME, DURABLE_MARKER]);
    model.release();
  });

  it("uses an unchanged copy without copying, and says so when the share cannot be compared", async () => {
    const f = await storeFixture(MODEL);
    (await (await open(f)).resolve("/x/m/A")).release();
    const copy = new GatedCopy();
    const lines: string[] = [];
    const store = await open(f, { copyFile: copy.copyFile });
    const same = await store.resolve("/x/m/A", { onLog: (l) => lines.push(l) });
    expect(same.how).toBe("staged");
    expect(lines).toEqual([]);
    same.release();
    // The share goes away (unmounted): the copy is still used, with a line saying it was not checked.
    await rename(f.share, f.share + ".gone");
    const unchecked = await store.resolve("/x/m/A", { onLog: (l) => lines.push(l) });
    expect(unchecked.how).toBe("staged");
    expect(lines).toEqual([`using the staged copy of m/A unchecked: the share ${f.share} is not reachable`]);
    expect(copy.calls).toEqual([]);
    unchecked.release();
  });
});
