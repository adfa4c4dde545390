import { afterAll, afterEach, describe, expect, it } from "vitest";
import { access, mkdir, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { makeTempDir, useTempDir } from "./temp-dir.js";

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

describe("makeTempDir", () => {
  it("creates an empty directory under the OS temp dir and removes it with its contents", async () => {
    const dir = await makeTempDir("kitt-x-");
    expect(dir.path.startsWith(tmpdir())).toBe(true);
    expect((await stat(dir.path)).isDirectory()).toBe(true);
    await mkdir(`${dir.path}/a/b`, { recursive: true });
    await writeFile(`${dir.path}/a/b/f`, "x");
    await dir.cleanup();
    expect(await exists(dir.path)).toBe(false);
    await dir.cleanup();
  });
});

describe("useTempDir", () => {
  const tempDir = useTempDir(afterEach);
  const made: string[] = [];

  it("hands out distinct directories", async () => {
    const a = await tempDir();
    const b = await tempDir();
    expect(a).not.toBe(b);
    made.push(a, b);
    expect(await exists(a)).toBe(true);
  });

  it("removed the previous test's directories after it ended", async () => {
    expect(made).toHaveLength(2);
    for (const path of made) expect(await exists(path)).toBe(false);
  });

  afterAll(async () => {
    for (const path of made) expect(await exists(path)).toBe(false);
  });
});
