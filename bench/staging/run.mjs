#!/usr/bin/env node
// Staging benchmark: ModelStore.resolve() copying a model from a "share"
// directory on local disk vs `cp -r` of the same directory, alternating in one
// run; plus resolve() of an already staged 1,000-file model. Needs the built
// package: ./dev --filter @kitt/storage run build
import path from "node:path";
import os from "node:os";
import { spawn } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { mkdir, mkdtemp, open, rm, statfs, writeFile } from "node:fs/promises";
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const { ModelStore } = await import(path.join(here, "../../packages/storage/dist/index.js"));

const { values: opt } = parseArgs({
  options: {
    "shard-mib": { type: "string", default: "256" },
    shards: { type: "string", default: "4" },
    "small-files": { type: "string", default: "100" },
    rounds: { type: "string", default: "3" },
    "index-files": { type: "string", default: "1000" },
    concurrency: { type: "string", default: "4" },
    dir: { type: "string", default: os.tmpdir() },
    "drop-caches": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (opt.help) {
  console.log(`usage: node bench/staging/run.mjs [--shard-mib 256] [--shards 4] [--small-files 100] [--rounds 3]
       [--index-files 1000] [--concurrency 4] [--dir ${os.tmpdir()}] [--drop-caches] [--json]`);
  process.exit(0);
}
const int = (name) => {
  const v = Number(opt[name]);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`--${name} must be a positive integer, got ${opt[name]}`);
    process.exit(2);
  }
  return v;
};
const shardMiB = int("shard-mib");
const shards = int("shards");
const smallFiles = int("small-files");
const rounds = int("rounds");
const indexFiles = int("index-files");
const concurrency = int("concurrency");
const MiB = 1024 * 1024;

const run = (cmd, args) =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}`))));
  });
const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const log = (...a) => {
  if (!opt.json) console.log(...a);
};

/** Random data in 16 MiB chunks: incompressible, and no page is shared between files. */
async function writeRandom(file, bytes) {
  const handle = await open(file, "w");
  const chunk = Buffer.alloc(Math.min(bytes, 16 * MiB));
  try {
    for (let done = 0; done < bytes; ) {
      const n = Math.min(chunk.length, bytes - done);
      randomFillSync(chunk, 0, n);
      await handle.write(chunk, 0, n);
      done += n;
    }
  } finally {
    await handle.close();
  }
}

const modelBytes = shards * shardMiB * MiB + smallFiles * 64 * 1024;
const fsInfo = await statfs(opt.dir);
const free = fsInfo.bavail * fsInfo.bsize;
// Source + one copy at a time + the store's 1 GiB margin + slack.
const need = 2 * modelBytes + 1.5 * 1024 * MiB;
if (free < need) {
  console.error(`not enough space in ${opt.dir}: need about ${(need / 1e9).toFixed(1)} GB, free ${(free / 1e9).toFixed(1)} GB; use --shard-mib/--shards to shrink the model`);
  process.exit(1);
}

let dropCaches = false;
if (opt["drop-caches"]) {
  try {
    writeFileSync("/proc/sys/vm/drop_caches", "1");
    dropCaches = true;
  } catch (err) {
    console.error(`--drop-caches needs root and a writable /proc/sys/vm/drop_caches: ${err.message}`);
    process.exit(1);
  }
}

const base = await mkdtemp(path.join(opt.dir, "kitt-staging-bench-"));
const cleanup = () => rm(base, { recursive: true, force: true });
process.on("SIGINT", () => {
  void cleanup().finally(() => process.exit(130));
});

try {
  const share = path.join(base, "share");
  const storage = path.join(base, "storage");
  const src = path.join(share, "bench", "Model-Bench");
  const cpDest = path.join(base, "cp-dest", "Model-Bench");
  await mkdir(path.join(src, "extra"), { recursive: true });
  await mkdir(path.dirname(cpDest), { recursive: true });

  log(`generating ${shards} x ${shardMiB} MiB shards + ${smallFiles} small files in ${src}`);
  for (let i = 1; i <= shards; i++) {
    await writeRandom(path.join(src, `model-${String(i).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`), shardMiB * MiB);
  }
  for (let i = 0; i < smallFiles; i++) {
    const dir = i % 2 === 0 ? src : path.join(src, "extra");
    await writeRandom(path.join(dir, `small-${i}.json`), 1024 + ((i * 7919) % (63 * 1024)));
  }
  const many = path.join(share, "bench", "Many-Files");
  for (let i = 0; i < indexFiles; i++) {
    const dir = path.join(many, `d${i % 20}`);
    if (i < 20) await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, `f${i}.json`), `{"i":${i}}\n`);
  }

  const store = await ModelStore.open({ modelStorageDir: storage, modelShareMount: share, autoCleanup: false }, { copyConcurrency: concurrency });
  const ourDest = path.join(storage, "bench", "Model-Bench");

  // Every timed copy starts the same way: the previous copy (same size) has
  // just been deleted, dirty pages flushed with `sync`, and, with
  // --drop-caches, the page cache dropped so the source is read from disk.
  // An untimed warm-up copy gives the first round a copy to delete too.
  // Untimed warm-ups of both: cp -r, then resolve() (its worker threads start).
  await run("cp", ["-r", src, cpDest]);
  (await store.resolve("/models/bench/Model-Bench")).release();
  await store.flush();
  await rm(ourDest, { recursive: true, force: true });
  let previous = cpDest;
  const settle = async () => {
    await rm(previous, { recursive: true, force: true });
    await run("sync", []);
    if (dropCaches) writeFileSync("/proc/sys/vm/drop_caches", "1");
  };

  const ours = [];
  const oursDurable = [];
  const cp = [];
  const cpSync = [];
  const timeOurs = async (round) => {
    await settle();
    const t0 = process.hrtime.bigint();
    const model = await store.resolve("/models/bench/Model-Bench");
    const s = seconds(t0);
    if (model.how !== "copied") throw new Error(`expected a copy, got ${model.how}`);
    // The benchmark may start here; the copy becomes durable in the background.
    await store.flush();
    const durable = seconds(t0);
    model.release();
    ours.push(s);
    oursDurable.push(durable);
    previous = ourDest;
    log(`round ${round}  resolve()  ${s.toFixed(2)} s  (${(modelBytes / s / 1e9).toFixed(2)} GB/s; durable, marker written, after ${durable.toFixed(2)} s)`);
  };
  const timeCp = async (round) => {
    await settle();
    const t0 = process.hrtime.bigint();
    await run("cp", ["-r", src, cpDest]);
    const s = seconds(t0);
    await run("sync", []);
    const withSync = seconds(t0);
    cp.push(s);
    cpSync.push(withSync);
    previous = cpDest;
    log(`round ${round}  cp -r      ${s.toFixed(2)} s  (${(modelBytes / s / 1e9).toFixed(2)} GB/s; with the sync after it ${withSync.toFixed(2)} s)`);
  };
  for (let r = 1; r <= rounds; r++) {
    // Alternate which goes first so that drift during the run hits both alike.
    if (r % 2 === 1) {
      await timeOurs(r);
      await timeCp(r);
    } else {
      await timeCp(r);
      await timeOurs(r);
    }
  }
  await rm(previous, { recursive: true, force: true });

  // An already staged 1,000-file model: resolve() checks its manifest only.
  (await store.resolve("/models/bench/Many-Files")).release();
  const staged = [];
  for (let i = 0; i < 5; i++) {
    const t0 = process.hrtime.bigint();
    const m = await store.resolve("/models/bench/Many-Files");
    staged.push(seconds(t0) * 1000);
    if (m.how !== "staged") throw new Error(`expected staged, got ${m.how}`);
    m.release();
  }

  const result = {
    model_bytes: modelBytes,
    shards,
    shard_mib: shardMiB,
    small_files: smallFiles,
    concurrency,
    rounds,
    caches: dropCaches ? "dropped before each timed copy" : "as they are (source cached after the first read)",
    resolve_median_s: median(ours),
    resolve_then_durable_median_s: median(oursDurable),
    cp_median_s: median(cp),
    cp_then_sync_median_s: median(cpSync),
    ratio_ours_over_cp: median(ours) / median(cp),
    ratio_durable_over_cp_then_sync: median(oursDurable) / median(cpSync),
    staged_resolve_files: indexFiles,
    staged_resolve_median_ms: median(staged),
  };
  if (opt.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log("");
    console.log(`model: ${shards} x ${shardMiB} MiB + ${smallFiles} small files (${(modelBytes / 1e9).toFixed(2)} GB), concurrency ${concurrency}, caches ${result.caches}`);
    console.log(`median resolve()        ${result.resolve_median_s.toFixed(2)} s   (the benchmark may start)`);
    console.log(`median cp -r            ${result.cp_median_s.toFixed(2)} s   ratio resolve()/cp ${result.ratio_ours_over_cp.toFixed(2)}  (goal <= 1.1)`);
    console.log(`median resolve(); durable ${result.resolve_then_durable_median_s.toFixed(2)} s`);
    console.log(`median cp -r; sync      ${result.cp_then_sync_median_s.toFixed(2)} s   ratio durable/(cp+sync) ${result.ratio_durable_over_cp_then_sync.toFixed(2)}`);
    console.log(`staged ${indexFiles}-file model, resolve() median ${result.staged_resolve_median_ms.toFixed(1)} ms (manifest check only)`);
  }
} finally {
  await cleanup();
}
