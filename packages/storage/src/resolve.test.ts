import { describe, it, expect } from "vitest";
import path from "node:path";
import { mkdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { MemoryLogger } from "@kitt/protocol";
import { ModelStore } from "./model-store.js";
import { DURABLE_MARKER, MANIFEST_NAME, parseManifest } from "./manifest.js";
import type { StagingProgress } from "./progress.js";
import { expectSameTree, GatedCopy, leftoversUnder, steppingClock, storeFixture, tempDir, writeModel, type StoreFixture } from "./test-helpers.js";

const QWEN = {
  "hf/Qwen/Qwen3-8B/config.json": '{"model_type":"qwen3"}',
  "hf/Qwen/Qwen3-8B/model-00001-of-00002.safetensors": 300_000,
  "hf/Qwen/Qwen3-8B/model-00002-of-00002.safetensors": 200_000,
  "hf/Qwen/Qwen3-8B/tokenizer/tokenizer.json": 5_000,
  "hf/Qwen/Qwen3-8B/empty-dir/.keep": "",
};

async function open(f: StoreFixture, options: Parameters<typeof ModelStore.open>[1] = {}, share = true) {
  return ModelStore.open(
    { modelStorageDir: f.storage, modelShareMount: share ? f.share : "" },
    { mountInfoPath: f.mountinfo, spaceMarginBytes: 0, env: { PATH: "/nonexistent" }, ...options },
  );
}

describe("resolve: copy from the share (steps 3 and 4)", () => {
  it("stages the model atomically with a manifest, progress and log lines", async () => {
    const f = await storeFixture(QWEN);
    const copy = new GatedCopy();
    const logger = new MemoryLogger();
    const store = await open(f, { copyFile: copy.copyFile, logger, now: steppingClock(0, 1000), logIntervalMs: 0 });
    const progress: StagingProgress[] = [];
    const lines: string[] = [];
    const model = await store.resolve("/data/models/hf/Qwen/Qwen3-8B", {
      onProgress: (p) => progress.push(p),
      onLog: (l) => lines.push(l),
    });
    const dest = path.join(f.storage, "hf", "Qwen", "Qwen3-8B");
    expect(model).toMatchObject({ path: dest, how: "copied", modelDir: dest });
    await expectSameTree(path.join(f.share, "hf/Qwen/Qwen3-8B"), dest, [MANIFEST_NAME, DURABLE_MARKER]);
    expect(copy.calls).toHaveLength(5);

    const manifest = parseManifest(await readFile(path.join(dest, MANIFEST_NAME), "utf8"));
    expect(manifest).toMatchObject({ type: "dir", source: "hf/Qwen/Qwen3-8B", total_bytes: 505_000 + '{"model_type":"qwen3"}'.length });
    expect(manifest?.files.map((x) => x.path).sort()).toEqual([
      "config.json",
      "empty-dir/.keep",
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "tokenizer/tokenizer.json",
    ]);
    // The local copy carries the share's mtimes: the next incremental pass relies on it.
    const shareSt = await stat(path.join(f.share, "hf/Qwen/Qwen3-8B/config.json"));
    expect(Math.abs((await stat(path.join(dest, "config.json"))).mtimeMs - shareSt.mtimeMs)).toBeLessThan(1);

    const last = progress[progress.length - 1];
    expect(last).toMatchObject({ model: "Qwen3-8B", filesDone: 5, filesTotal: 5, bytesDone: last?.bytesTotal });
    expect(lines[0]).toMatch(/^Staging Qwen3-8B from .*: 5 file\(s\), [\d.]+ MiB to copy$/);
    expect(lines.some((l) => /^Copying Qwen3-8B: [\d.]+\/[\d.]+ MiB \(\d+%\), [\d.]+ MiB\/s, ETA \S+$/.test(l))).toBe(true);
    expect(lines[lines.length - 1]).toMatch(/^Staged Qwen3-8B: /);
    expect(await leftoversUnder(f.storage)).toEqual([]);
    model.release();
  });

  it("survives callbacks that throw", async () => {
    const f = await storeFixture(QWEN);
    const logger = new MemoryLogger();
    const store = await open(f, { logger, logIntervalMs: 0, progressIntervalMs: 1 });
    const model = await store.resolve("/data/models/hf/Qwen/Qwen3-8B", {
      onProgress: () => {
        throw new Error("progress sink broke");
      },
      onLog: () => {
        throw new Error("log sink broke");
      },
    });
    expect(model.how).toBe("copied");
    expect(logger.records.filter((r) => r.message.includes("callback threw"))).toHaveLength(1);
    model.release();
  });

  it("stages a single-file model and returns the file inside its directory", async () => {
    const f = await storeFixture({ "gguf/qwen-7b.Q4_K_M.gguf": 10_000 });
    const store = await open(f);
    const model = await store.resolve("/models/gguf/qwen-7b.Q4_K_M.gguf");
    expect(model.how).toBe("copied");
    expect(model.path).toBe(path.join(f.storage, "gguf", "qwen-7b.Q4_K_M.gguf", "qwen-7b.Q4_K_M.gguf"));
    expect((await readFile(model.path)).equals(await readFile(path.join(f.share, "gguf/qwen-7b.Q4_K_M.gguf")))).toBe(true);
    model.release();
    const again = await store.resolve("/other/gguf/qwen-7b.Q4_K_M.gguf");
    expect(again).toMatchObject({ how: "staged", path: model.path });
    again.release();
  });

  it("finds a model by its last name when no suffix matches", async () => {
    const f = await storeFixture({ "hub/org/Llama-3-8B/config.json": "{}" });
    const store = await open(f);
    const model = await store.resolve("/somewhere/else/Llama-3-8B");
    expect(model.path).toBe(path.join(f.storage, "hub", "org", "Llama-3-8B"));
    model.release();
  });

  it("refuses a model on the share that links outside it", async () => {
    const f = await storeFixture({ "hf/ok/config.json": "{}" });
    const outside = path.join(f.root, "outside");
    await writeModel(outside, { "secret.bin": 10 });
    await symlink(outside, path.join(f.share, "hf", "Evil"));
    await mkdir(path.join(f.share, "hf", "Sneaky"));
    await symlink(path.join(outside, "secret.bin"), path.join(f.share, "hf", "Sneaky", "weights.bin"));
    const store = await open(f);
    await expect(store.resolve("/data/hf/Evil")).rejects.toMatchObject({ code: "MODEL_OUTSIDE_SHARE" });
    await expect(store.resolve("/data/hf/Sneaky")).rejects.toMatchObject({
      code: "MODEL_OUTSIDE_SHARE",
      message: expect.stringContaining("links to"),
    });
    expect(await leftoversUnder(f.storage)).toEqual([]);
  });
});

describe("resolve: the other steps", () => {
  it("1: uses a complete staged copy without touching the share", async () => {
    const f = await storeFixture(QWEN);
    const store = await open(f);
    (await store.resolve("/data/models/hf/Qwen/Qwen3-8B")).release();
    await rm(f.share, { recursive: true });
    const copy = new GatedCopy();
    const again = await (await open(f, { copyFile: copy.copyFile })).resolve("/nfs/hf/Qwen/Qwen3-8B");
    expect(again).toMatchObject({ how: "staged", path: path.join(f.storage, "hf", "Qwen", "Qwen3-8B") });
    expect(copy.calls).toEqual([]);
    again.release();
  });

  it("1: finds a model staged as part of a bigger directory", async () => {
    const f = await storeFixture(QWEN);
    const store = await open(f);
    const org = await store.resolve("/data/hf/Qwen");
    org.release();
    const copy = new GatedCopy();
    const model = await (await open(f, { copyFile: copy.copyFile })).resolve("/data/hf/Qwen/Qwen3-8B");
    expect(model).toMatchObject({ how: "staged", path: path.join(org.path, "Qwen3-8B"), modelDir: org.path });
    expect(copy.calls).toEqual([]);
    model.release();
  });

  it("1: reuses a staged copy only for the share entry it came from, not another that ends alike", async () => {
    const f = await storeFixture({ "Qwen3-8B/config.json": "root model", "gguf/Qwen3-8B/config.json": "gguf model" });
    const store = await open(f);
    const root = await store.resolve("/data/Qwen3-8B");
    expect(root).toMatchObject({ how: "copied", path: path.join(f.storage, "Qwen3-8B") });
    root.release();
    const gguf = await store.resolve("/data/gguf/Qwen3-8B");
    expect(gguf).toMatchObject({ how: "copied", path: path.join(f.storage, "gguf", "Qwen3-8B") });
    expect(await readFile(path.join(gguf.path, "config.json"), "utf8")).toBe("gguf model");
    gguf.release();
    // Both staged now: each request gets its own copy back.
    for (const [request, content] of [["/data/Qwen3-8B", "root model"], ["/data/gguf/Qwen3-8B", "gguf model"]] as const) {
      const again = await store.resolve(request);
      expect(again.how).toBe("staged");
      expect(await readFile(path.join(again.path, "config.json"), "utf8")).toBe(content);
      again.release();
    }
    expect(await store.findStaged("/data/gguf/Qwen3-8B")).toBe(path.join(f.storage, "gguf", "Qwen3-8B"));
  });

  it("1: without a share, a staged copy counts only when the suffix equals its recorded source", async () => {
    const f = await storeFixture({ "hf/Qwen/Qwen3-8B/config.json": "{}" });
    (await (await open(f)).resolve("/data/hf/Qwen/Qwen3-8B")).release();
    // A hand-made manifest claiming another source: the directory is not a copy of hf/Qwen/Qwen3-8B.
    const dest = path.join(f.storage, "hf", "Qwen", "Qwen3-8B");
    const manifestPath = path.join(dest, MANIFEST_NAME);
    const manifest = parseManifest(await readFile(manifestPath, "utf8"));
    await writeFile(manifestPath, JSON.stringify({ ...manifest, source: "other/Qwen3-8B" }));
    const noShare = await open(f, {}, false);
    expect(await noShare.findStaged("/data/hf/Qwen/Qwen3-8B")).toBeUndefined();
    expect(await noShare.findStaged("/data/other/Qwen3-8B")).toBeUndefined();
    await writeFile(manifestPath, JSON.stringify(manifest));
    expect(await noShare.findStaged("/nfs/hf/Qwen/Qwen3-8B")).toBe(dest);
    expect(await noShare.findStaged("/nfs/Qwen/Qwen3-8B")).toBeUndefined();
  });

  it("2: uses a path already in storage (inside a staged model, or placed there by hand)", async () => {
    const f = await storeFixture(QWEN);
    const store = await open(f, {}, false);
    const handPlaced = path.join(f.storage, "manual", "my-model");
    await writeModel(handPlaced, { "config.json": "{}" });
    const logger: string[] = [];
    const model = await store.resolve(handPlaced, { onLog: (l) => logger.push(l) });
    expect(model).toMatchObject({ how: "storage", path: handPlaced });
    expect(logger[0]).toContain("has no completion manifest");
    model.release();

    const withShare = await open(f);
    (await withShare.resolve("/x/hf/Qwen/Qwen3-8B")).release();
    const sub = path.join(f.storage, "hf", "Qwen", "Qwen3-8B", "tokenizer");
    const inside = await withShare.resolve(sub);
    // Step 1 already recognises it as part of a complete staged model.
    expect(inside).toMatchObject({ how: "staged", path: sub, modelDir: path.dirname(sub) });
    inside.release();
  });

  it("2: with a share configured, a hand-placed model in storage is used before the share is asked", async () => {
    // The share has another model of the same last name, which a name search would find.
    const f = await storeFixture({ ...QWEN, "other/mine/config.json": "share model" });
    const store = await open(f);
    const handPlaced = path.join(f.storage, "manual", "mine");
    await writeModel(handPlaced, { "config.json": "my own model" });
    const lines: string[] = [];
    const model = await store.resolve(handPlaced, { onLog: (l) => lines.push(l) });
    expect(model).toMatchObject({ how: "storage", path: handPlaced, modelDir: handPlaced });
    expect(await readFile(path.join(model.path, "config.json"), "utf8")).toBe("my own model");
    expect(lines).toEqual([`using ${handPlaced} as is: it is in storage but has no completion manifest`]);
    expect(await leftoversUnder(f.storage)).toEqual([]);
    expect(existsSync(path.join(f.storage, "other"))).toBe(false);
    model.release();
  });

  it("5: uses an existing path as is when it is not on the share", async () => {
    const f = await storeFixture(QWEN);
    const local = await tempDir();
    const store = await open(f);
    const model = await store.resolve(local);
    expect(model).toMatchObject({ how: "as-is", path: local, modelDir: undefined });
  });

  it("6: passes a registry name through", async () => {
    const f = await storeFixture(QWEN);
    const store = await open(f);
    expect(await store.resolve("qwen2.5:7b")).toMatchObject({ how: "registry", path: "qwen2.5:7b" });
  });

  it("7: fails naming the path, the share and what was tried", async () => {
    const f = await storeFixture(QWEN);
    const store = await open(f);
    const err = await store.resolve("/data/models/hf/Missing/Model-X").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "MODEL_NOT_FOUND" });
    expect((err as Error).message).toBe(
      `model "/data/models/hf/Missing/Model-X" not found: not staged in ${f.storage}; ` +
        `not on the share (tried ${f.share}/data/models/hf/Missing/Model-X and its shorter suffixes; ` +
        `searched ${f.share} for "Model-X" to depth 4); and no such path on this machine`,
    );
    const noShare = await open(f, {}, false);
    await expect(noShare.resolve("/data/x/y")).rejects.toThrow(/no model share configured/);
  });

  it("refuses '.', '/', the storage dir and the share root before anything else", async () => {
    const f = await storeFixture(QWEN);
    const store = await open(f, { cwd: f.storage });
    for (const p of [".", "", "/", f.storage, path.dirname(f.storage), f.share, "../x"]) {
      await expect(store.resolve(p)).rejects.toMatchObject({ code: "MODEL_PATH_REFUSED" });
    }
  });

  it("refuses a path inside an unfinished staging directory", async () => {
    const f = await storeFixture(QWEN);
    const store = await open(f);
    const staging = path.join(f.storage, ".x.kitt-staging-0123456789ab");
    await mkdir(staging, { recursive: true });
    await writeFile(path.join(staging, "config.json"), "{}");
    await expect(store.resolve(staging)).rejects.toMatchObject({ code: "MODEL_PATH_REFUSED" });
  });
});
