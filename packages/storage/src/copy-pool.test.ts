import { describe, it, expect } from "vitest";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { chmod, readFile, stat } from "node:fs/promises";
import { CopyPool } from "./copy-pool.js";
import { tempDir, writeModel } from "./test-helpers.js";

describe("CopyPool", () => {
  it("copies in worker threads, sets the mtime, and reports errors with their code", async () => {
    const dir = await tempDir();
    await writeModel(dir, { "a.bin": 300_000, "b.bin": 10, "c.bin": 0 });
    const pool = new CopyPool(2);
    try {
      const mtime = Date.UTC(2024, 1, 2, 3, 4, 5, 678);
      await Promise.all(["a.bin", "b.bin", "c.bin"].map((n) => pool.copyFile(path.join(dir, n), path.join(dir, `copy-${n}`), mtime)));
      for (const n of ["a.bin", "b.bin", "c.bin"]) {
        expect((await readFile(path.join(dir, `copy-${n}`))).equals(await readFile(path.join(dir, n)))).toBe(true);
        expect((await stat(path.join(dir, `copy-${n}`))).mtimeMs).toBeCloseTo(mtime, 0);
      }
      await expect(pool.copyFile(path.join(dir, "missing"), path.join(dir, "x"), mtime)).rejects.toMatchObject({ code: "ENOENT" });
      await expect(pool.copyFile(path.join(dir, "a.bin"), path.join(dir, "no-dir", "x"), mtime)).rejects.toMatchObject({ code: "ENOENT" });
    } finally {
      await pool.close();
    }
  });

  it("ends workers that stay idle, and starts new ones for the next copies", async () => {
    const dir = await tempDir();
    await writeModel(dir, { "a.bin": 100_000, "b.bin": 10 });
    const pool = new CopyPool(2, { idleMs: 200 });
    try {
      await Promise.all(["a.bin", "b.bin"].map((n) => pool.copyFile(path.join(dir, n), path.join(dir, `1-${n}`), 0)));
      expect(pool.workers).toBe(2);
      const deadline = Date.now() + 10_000;
      while (pool.workers > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(pool.workers).toBe(0);
      // Busy is never idle: a worker copying for longer than idleMs is not ended.
      await Promise.all(["a.bin", "b.bin"].map((n) => pool.copyFile(path.join(dir, n), path.join(dir, `2-${n}`), 0)));
      await pool.fsyncAll([path.join(dir, "2-a.bin")]);
      expect(pool.workers).toBeGreaterThan(0);
      for (const n of ["a.bin", "b.bin"]) expect((await readFile(path.join(dir, `2-${n}`))).equals(await readFile(path.join(dir, n)))).toBe(true);
    } finally {
      await pool.close();
    }
    expect(pool.workers).toBe(0);
  });

  it("rejects what is still queued when closed", async () => {
    const dir = await tempDir();
    await writeModel(dir, { "a.bin": 1000 });
    const pool = new CopyPool(1);
    const copies = [1, 2, 3].map((i) => pool.copyFile(path.join(dir, "a.bin"), path.join(dir, `c${i}`), 0));
    const settled = Promise.allSettled(copies);
    await pool.close();
    const results = await settled;
    expect(results.filter((r) => r.status === "rejected").length).toBeGreaterThanOrEqual(2);
  });

  it("keeps a process alive while copying and lets it exit when idle", async () => {
    const dir = await tempDir();
    await writeModel(dir, { "big.bin": 20_000_000 });
    const poolFile = path.join(path.dirname(fileURLToPath(import.meta.url)), "copy-pool.ts");
    // No await on the copy: only the busy worker may keep the process alive until it is done.
    const code = `const { CopyPool } = await import(process.argv[1]);
      new CopyPool(2).copyFile(process.argv[2], process.argv[3], 0).then(() => console.log("done"));`;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", code, poolFile, path.join(dir, "big.bin"), path.join(dir, "copy.bin")], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(child.signal).toBeNull();
    expect(child.status).toBe(0);
    expect(child.stdout).toBe("done\n");
    expect((await readFile(path.join(dir, "copy.bin"))).equals(await readFile(path.join(dir, "big.bin")))).toBe(true);
  });

  it("copies a read-only (0444) file as an unprivileged user", async () => {
    const dir = await tempDir();
    await writeModel(dir, { "ro.bin": 1000 });
    await chmod(path.join(dir, "ro.bin"), 0o444);
    await chmod(dir, 0o777);
    const poolFile = path.join(path.dirname(fileURLToPath(import.meta.url)), "copy-pool.ts");
    // Root ignores file modes, so as root the child drops to nobody, after loading the pool: the
    // checkout (and node itself) may sit in a directory only root can read.
    const asRoot = process.getuid?.() === 0;
    const code = `const { CopyPool } = await import(process.argv[1]);
      if (${asRoot}) { process.setgroups([]); process.setgid(65534); process.setuid(65534); }
      await new CopyPool(1).copyFile(process.argv[2], process.argv[3], 0); console.log("ok");`;
    const args = ["--input-type=module", "-e", code, poolFile, path.join(dir, "ro.bin"), path.join(dir, "copy.bin")];
    const child = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 20_000 });
    expect(child.stderr).toBe("");
    expect(child.stdout).toBe("ok\n");
    expect((await stat(path.join(dir, "copy.bin"))).mode & 0o777).toBe(0o444);
  });
});
