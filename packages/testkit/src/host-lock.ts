import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A lock shared by every test run on this host (every clone, every suite),
 * for what only exists once per host: a tag of the Docker engine such as
 * `kitt:latest`, which two suites run side by side would otherwise move
 * under each other. A directory under the temp dir, created atomically
 * (mkdir), holding the owner's pid; a lock whose owner is gone (a killed
 * run) is taken over. Resolves with the release function.
 */
export async function acquireHostLock(name: string, options: { timeoutMs?: number; dir?: string } = {}): Promise<() => Promise<void>> {
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(name)) throw new Error(`host lock name ${JSON.stringify(name)}: lowercase letters, digits, dots and dashes only`);
  const base = options.dir ?? join(tmpdir(), "kitt-test-locks");
  const path = join(base, `${name}.lock`);
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  await mkdir(base, { recursive: true, mode: 0o1777 }).catch(() => {});
  for (;;) {
    try {
      await mkdir(path);
      await writeFile(join(path, "pid"), String(process.pid));
      return async () => {
        await rm(path, { recursive: true, force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const owner = Number(await readFile(join(path, "pid"), "utf8").catch(() => ""));
    // No pid yet: the owner is between its mkdir and its write; wait for it like for any owner.
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
      await rm(path, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`host lock ${path} still held by pid ${owner || "?"} after ${options.timeoutMs ?? 120_000} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
