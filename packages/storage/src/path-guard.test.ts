import { describe, it, expect } from "vitest";
import path from "node:path";
import { mkdir, symlink } from "node:fs/promises";
import { UsageError } from "@kitt/protocol";
import { checkModelPath } from "./path-guard.js";
import { normalizeStorageSettings } from "./settings.js";
import { tempDir } from "./test-helpers.js";

async function setup() {
  const root = await tempDir();
  const storage = path.join(root, "home", ".kitt", "models");
  const mount = path.join(root, "mnt", "models");
  await mkdir(storage, { recursive: true });
  await mkdir(mount, { recursive: true });
  const settings = normalizeStorageSettings(
    { modelStorageDir: storage, modelShareMount: mount, modelShareSource: "nas:/volume1/models" },
    undefined,
    root,
  );
  return { root, storage, mount, settings };
}

describe("checkModelPath", () => {
  it.each([
    ["", "it is empty"],
    ["   ", "it is empty"],
    [".", "current directory"],
    ["./", "current directory"],
    ["/", "root directory"],
    ["//", "root directory"],
    ["..", `".." is not allowed`],
    ["/data/models/../../etc", `".." is not allowed`],
    ["models/..", `".." is not allowed`],
    [" /data/m", "leading or trailing spaces"],
    ["/data/m\n", "control characters"],
    ["/volume1/models", "share root"],
  ])("refuses %j", async (modelPath, why) => {
    const { settings, root } = await setup();
    const err = await checkModelPath(modelPath, settings, root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).code).toBe("MODEL_PATH_REFUSED");
    expect((err as Error).message).toContain(why);
  });

  it("refuses the storage dir, its parents and the share mount, literally and through symlinks", async () => {
    const { settings, root, storage, mount } = await setup();
    for (const p of [storage, storage + "/", path.dirname(storage), path.join(root, "home"), mount]) {
      await expect(checkModelPath(p, settings, root)).rejects.toThrow(/model storage directory|share root/);
    }
    // A relative path from a cwd that makes it the storage dir.
    await expect(checkModelPath("models", settings, path.dirname(storage))).rejects.toThrow(/model storage directory itself/);
    const alias = path.join(root, "alias");
    await symlink(path.dirname(storage), alias);
    await expect(checkModelPath(alias, settings, root)).rejects.toThrow(/contains the model storage directory/);
    const mountAlias = path.join(root, "share-alias");
    await symlink(mount, mountAlias);
    await expect(checkModelPath(mountAlias, settings, root)).rejects.toThrow(/share root/);
  });

  it("accepts model paths, registry names and paths under storage", async () => {
    const { settings, root, storage } = await setup();
    for (const p of ["/data/models/hf/Qwen/Qwen3-8B", "qwen2.5:7b", "Qwen/Qwen3-8B", path.join(storage, "hf", "x")]) {
      await expect(checkModelPath(p, settings, root)).resolves.toBe(p);
    }
  });
});
