/**
 * A real, tiny filesystem (tmpfs, 256 KiB by default) that a test can fill
 * to the brim, so that writes fail with a real ENOSPC from the kernel, and
 * empty again. Mounting needs root (or CAP_SYS_ADMIN): `mountSmallDisk()`
 * returns undefined where the machine does not allow it, and the tests that
 * need it are skipped there with that reason.
 */
import { execFile } from "node:child_process";
import { mkdtemp, open, rm, rmdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const FILLER = ".filler";

export interface SmallDisk {
  path: string;
  /** Writes a filler file until the kernel says ENOSPC (whole pages, then single bytes). */
  fill(): Promise<void>;
  /** Removes the filler: the disk has room again. */
  free(): Promise<void>;
  unmount(): Promise<void>;
}

/** Mounts a fresh tmpfs of `sizeKiB` (mode 0700) in a new temp dir; undefined when mounting is not allowed here. */
export async function mountSmallDisk(sizeKiB = 256): Promise<SmallDisk | undefined> {
  const path = await mkdtemp(join(tmpdir(), "kitt-small-disk-"));
  try {
    await run("mount", ["-t", "tmpfs", "-o", `size=${sizeKiB}k,mode=0700`, "tmpfs", path], { timeout: 10_000 });
  } catch {
    await rmdir(path);
    return undefined;
  }
  return {
    path,
    fill: () => fillUp(join(path, FILLER)),
    free: () => rm(join(path, FILLER), { force: true }),
    unmount: async () => {
      await run("umount", [path], { timeout: 10_000 });
      await rmdir(path);
    },
  };
}

async function fillUp(file: string): Promise<void> {
  const handle = await open(file, "a");
  try {
    for (const size of [4096, 1]) {
      const chunk = Buffer.alloc(size, 120);
      for (;;) {
        try {
          await handle.write(chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw err;
        }
      }
    }
  } finally {
    await handle.close();
  }
}

/** Whether this machine can mount one (probed once per test file). */
export async function canMountSmallDisk(): Promise<boolean> {
  const disk = await mountSmallDisk();
  if (disk === undefined) return false;
  await disk.unmount();
  return true;
}
