// Test-only helpers (excluded from the build by the test-*.ts pattern).
import path from "node:path";
import os from "node:os";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, readdir, realpath, rm, writeFile } from "node:fs/promises";
import { sharedCopyPool } from "./copy-pool.js";
import { afterEach } from "vitest";

const made: string[] = [];

/** A fresh real temp directory, removed after the current test. */
export async function tempDir(prefix = "kitt-storage-"): Promise<string> {
  const dir = await realpath(await mkdtemp(path.join(os.tmpdir(), prefix)));
  made.push(dir);
  return dir;
}

afterEach(async () => {
  // maxRetries: a store's background durability pass may still be writing its
  // marker into a staged copy here; it stops quietly once the copy is gone.
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

/** Write a model: `files` maps relative paths to sizes (random bytes) or string contents. */
export async function writeModel(dir: string, files: Record<string, number | string>): Promise<void> {
  for (const [rel, spec] of Object.entries(files)) {
    const p = path.join(dir, rel);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, typeof spec === "number" ? randomBytes(spec) : spec);
  }
}

/** Relative paths of all regular files under `dir`, sorted (symlinks not followed). */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(path.join(d, e.name), r);
      else if (e.isFile()) out.push(r);
    }
  };
  await walk(dir, "");
  return out.sort();
}

/** Every file of `a` equals the same file in `b`, and `b` has no others (ignoring `ignore`). */
export async function expectSameTree(a: string, b: string, ignore: string[] = []): Promise<void> {
  const fa = (await listFiles(a)).filter((f) => !ignore.includes(f));
  const fb = (await listFiles(b)).filter((f) => !ignore.includes(f));
  if (JSON.stringify(fa) !== JSON.stringify(fb)) throw new Error(`file lists differ: ${JSON.stringify(fa)} vs ${JSON.stringify(fb)}`);
  for (const f of fa) {
    const [x, y] = await Promise.all([readFile(path.join(a, f)), readFile(path.join(b, f))]);
    if (!x.equals(y)) throw new Error(`${f} differs`);
  }
}

/** Names anywhere under `dir` that look like staging or trash leftovers. */
export async function leftoversUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (/\.kitt-(staging|trash)-/.test(e.name)) out.push(path.join(d, e.name));
      if (e.isDirectory()) await walk(path.join(d, e.name));
    }
  };
  await walk(dir);
  return out;
}

/** A copyFile that records calls and can hold copies at a gate until released. */
export class GatedCopy {
  readonly calls: string[] = [];
  private gateOpen = true;
  private waiting: Array<() => void> = [];
  private startedListeners: Array<{ n: number; resolve: () => void }> = [];

  close(): void {
    this.gateOpen = false;
  }

  open(): void {
    this.gateOpen = true;
    for (const w of this.waiting.splice(0)) w();
  }

  /** Resolves once `n` copies have been called. */
  started(n: number): Promise<void> {
    if (this.calls.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.startedListeners.push({ n, resolve }));
  }

  /** Calls the production copy once the gate is open. */
  readonly copyFile = async (src: string, dest: string, mtimeMs: number): Promise<void> => {
    this.calls.push(src);
    for (const l of this.startedListeners.filter((x) => this.calls.length >= x.n)) {
      this.startedListeners.splice(this.startedListeners.indexOf(l), 1);
      l.resolve();
    }
    const run = (async () => {
      if (!this.gateOpen) await new Promise<void>((resolve) => this.waiting.push(resolve));
      await sharedCopyPool(4).copyFile(src, dest, mtimeMs);
    })();
    this.running.push(run.catch(() => {}));
    await run;
  };

  private readonly running: Array<Promise<void>> = [];

  /** Resolves when every copy started so far has finished or failed. */
  async settled(): Promise<void> {
    await Promise.all(this.running);
  }
}

/** A fake clock advancing `stepMs` per reading. */
export function steppingClock(start = Date.UTC(2025, 0, 1), stepMs = 1000): () => number {
  let t = start;
  return () => (t += stepMs);
}

/** Write an executable shell script. */
export async function writeScript(file: string, body: string): Promise<void> {
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
}

export interface StoreFixture {
  root: string;
  share: string;
  storage: string;
  /** mountinfo listing nothing: the share counts as mounted because it is a non-empty directory. */
  mountinfo: string;
}

/** A share directory with `files` and an empty storage dir, under a fresh temp dir. */
export async function storeFixture(files: Record<string, number | string>): Promise<StoreFixture> {
  const root = await tempDir();
  const share = path.join(root, "share");
  const storage = path.join(root, "storage");
  await writeModel(share, files);
  const mountinfo = path.join(root, "mountinfo");
  await writeFile(mountinfo, "22 1 253:0 / / rw - ext4 /dev/vda rw\n");
  return { root, share, storage, mountinfo };
}
