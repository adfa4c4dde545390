// Test-only child process: stages a model from a share with one copy at a
// time, reports each finished file on stdout, and on file number `stopAfter`
// writes half of it, prints "ready" and hangs until the parent kills it.
// With "refresh", it updates an already staged model from the share.
import { readFile, writeFile } from "node:fs/promises";
import { ModelStore } from "./model-store.js";
import { sharedCopyPool } from "./copy-pool.js";

const [share, storage, modelPath, stopAfterText, mode] = process.argv.slice(2);
if (share === undefined || storage === undefined || modelPath === undefined || stopAfterText === undefined) {
  process.stderr.write("usage: test-stage-child <share> <storage> <modelPath> <stopAfter> [refresh]\n");
  process.exit(2);
}
const stopAfter = Number(stopAfterText);
let done = 0;

const store = await ModelStore.open(
  { modelStorageDir: storage, modelShareMount: share },
  {
    copyConcurrency: 1,
    spaceMarginBytes: 0,
    copyFile: async (src, dest, mtimeMs) => {
      if (done === stopAfter) {
        const data = await readFile(src);
        await writeFile(dest, data.subarray(0, Math.floor(data.length / 2)));
        process.stdout.write("ready\n");
        setInterval(() => {}, 60_000);
        await new Promise(() => {});
      }
      await sharedCopyPool(1).copyFile(src, dest, mtimeMs);
      done++;
      process.stdout.write(`copied ${done}\n`);
    },
  },
);
await store.resolve(modelPath, { refresh: mode === "refresh" });
process.stdout.write("finished\n");
