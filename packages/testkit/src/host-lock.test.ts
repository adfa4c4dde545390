import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import { acquireHostLock } from "./host-lock.js";
import { useTempDir } from "./temp-dir.js";

const tempDir = useTempDir(afterEach);

describe("acquireHostLock", () => {
  it("lets one holder in at a time, across processes, and the next one in once released", async () => {
    const dir = await tempDir();
    const release = await acquireHostLock("kitt-latest", { dir });
    // Another process waits for it.
    const script = `
      const { acquireHostLock } = await import(${JSON.stringify(new URL("../dist/host-lock.js", import.meta.url).pathname)});
      const release = await acquireHostLock("kitt-latest", { dir: ${JSON.stringify(dir)}, timeoutMs: 20000 });
      console.log("got it");
      await release();
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    await new Promise((r) => setTimeout(r, 500));
    expect(out).toBe("");
    await release();
    await once(child, "exit");
    expect(out).toBe("got it\n");
  });

  it("times out naming the holder, and takes over a lock whose holder is gone", async () => {
    const dir = await tempDir();
    const release = await acquireHostLock("busy", { dir });
    await expect(acquireHostLock("busy", { dir, timeoutMs: 300 })).rejects.toThrow(`host lock ${join(dir, "busy.lock")} still held by pid ${process.pid} after 300 ms`);
    await release();
    // A run that was killed while holding it.
    const dead = spawn(process.execPath, ["-e", ""]);
    await once(dead, "exit");
    await mkdir(join(dir, "stale.lock"));
    await writeFile(join(dir, "stale.lock", "pid"), String(dead.pid));
    const again = await acquireHostLock("stale", { dir, timeoutMs: 2_000 });
    await again();
    await expect(acquireHostLock("Bad Name", { dir })).rejects.toThrow("host lock name");
  });
});
