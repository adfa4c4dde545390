import { describe, it, expect } from "vitest";
import path from "node:path";
import { mkdir, symlink } from "node:fs/promises";
import { findOnShare, type SearchLimits } from "./share-lookup.js";
import { tempDir, writeModel } from "./test-helpers.js";

const limits = (over: Partial<SearchLimits> = {}): SearchLimits => ({
  maxDepth: 4,
  maxDirs: 1000,
  timeLimitMs: 10_000,
  now: () => 0,
  ...over,
});

describe("findOnShare", () => {
  it("strips leading parts until the rest exists under the mount", async () => {
    const share = await tempDir();
    await writeModel(share, { "hf/Qwen/Qwen3-8B/config.json": "{}" });
    const { match } = await findOnShare("/data/models/hf/Qwen/Qwen3-8B", share, limits());
    expect(match).toMatchObject({ source: path.join(share, "hf/Qwen/Qwen3-8B"), rel: "hf/Qwen/Qwen3-8B", isFile: false });
  });

  it("prefers the longest matching suffix", async () => {
    const share = await tempDir();
    await writeModel(share, { "gguf/Qwen3-8B/a": "x", "Qwen3-8B/b": "y" });
    expect((await findOnShare("/data/gguf/Qwen3-8B", share, limits())).match?.rel).toBe("gguf/Qwen3-8B");
  });

  it("finds a single-file model", async () => {
    const share = await tempDir();
    await writeModel(share, { "gguf/qwen-7b.Q4_K_M.gguf": 100 });
    const { match } = await findOnShare("/models/gguf/qwen-7b.Q4_K_M.gguf", share, limits());
    expect(match).toMatchObject({ rel: "gguf/qwen-7b.Q4_K_M.gguf", isFile: true });
  });

  it("falls back to a bounded search by the last name", async () => {
    const share = await tempDir();
    await writeModel(share, { "a/b/c/Llama-3-8B/config.json": "{}", "x/y/z/w/v/Deep-Model/config.json": "{}" });
    const found = await findOnShare("/elsewhere/Llama-3-8B", share, limits());
    expect(found.match?.rel).toBe("a/b/c/Llama-3-8B");
    // Deeper than maxDepth: not found, and the message says what was searched.
    const deep = await findOnShare("/elsewhere/Deep-Model", share, limits({ maxDepth: 3 }));
    expect(deep.match).toBeUndefined();
    expect(deep.tried).toContain(`searched ${share} for "Deep-Model" to depth 3`);
  });

  it("stops the search at the time and directory limits", async () => {
    const share = await tempDir();
    await writeModel(share, { "a/b/Target/f": "x" });
    let t = 0;
    const slow = await findOnShare("Target", share, limits({ now: () => (t += 600), timeLimitMs: 1000 }));
    expect(slow.match).toBeUndefined();
    expect(slow.tried).toContain("stopped after 1 s");
    const few = await findOnShare("Target", share, limits({ maxDirs: 2 }));
    expect(few.tried).toContain("stopped after 2 directories");
  });

  it("refuses an ambiguous name", async () => {
    const share = await tempDir();
    await writeModel(share, { "hf/M/a": "x", "gguf/M/b": "y" });
    await expect(findOnShare("/x/y/M", share, limits())).rejects.toMatchObject({ code: "MODEL_AMBIGUOUS" });
  });

  it("refuses a symlink that escapes the share, and accepts one that stays inside", async () => {
    const root = await tempDir();
    const share = path.join(root, "share");
    const outside = path.join(root, "secret");
    await writeModel(outside, { "id_rsa": "key" });
    await writeModel(share, { "real/Model-A/config.json": "{}" });
    await mkdir(path.join(share, "links"), { recursive: true });
    await symlink(outside, path.join(share, "links", "Evil"));
    await symlink(path.join(share, "real", "Model-A"), path.join(share, "links", "Model-A"));

    await expect(findOnShare("/data/links/Evil", share, limits())).rejects.toMatchObject({
      code: "MODEL_OUTSIDE_SHARE",
      message: expect.stringContaining(`resolves to ${outside}, outside the share`),
    });
    const inside = await findOnShare("/data/links/Model-A", share, limits());
    expect(inside.match).toMatchObject({ rel: "links/Model-A", real: path.join(share, "real", "Model-A") });
  });

  it("reports what it tried when nothing matches", async () => {
    const share = await tempDir();
    await writeModel(share, { "hf/other/f": "x" });
    const { match, tried } = await findOnShare("/data/models/missing-model", share, limits());
    expect(match).toBeUndefined();
    expect(tried).toContain(`${path.join(share, "data/models/missing-model")} and its shorter suffixes`);
  });
});
