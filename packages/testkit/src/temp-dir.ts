import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TempDir {
  path: string;
  /** Removes the directory and everything in it; safe to call twice. */
  cleanup(): Promise<void>;
}

/** A real, empty directory under the OS temp dir. */
export async function makeTempDir(prefix = "kitt-test-"): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

type Hook = (fn: () => Promise<void>) => void;

/**
 * Registers cleanup with the test runner's afterEach and returns a maker:
 *   const tempDir = useTempDir(afterEach);
 *   it("...", async () => { const dir = await tempDir(); ... });
 * The runner's hook is passed in so this file never imports vitest.
 */
export function useTempDir(afterEach: Hook, prefix?: string): () => Promise<string> {
  const made: TempDir[] = [];
  afterEach(async () => {
    const dirs = made.splice(0);
    await Promise.all(dirs.map((dir) => dir.cleanup()));
  });
  return async () => {
    const dir = await makeTempDir(prefix);
    made.push(dir);
    return dir.path;
  };
}
