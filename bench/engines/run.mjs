// bench/engines: what the native engine probes cost a heartbeat.
//
// The heartbeat carries every native engine's state. Probing is slow: it runs
// `ollama --version`, `llama-server --version`, asks a running engine's
// readiness URL and, for vLLM, `python3 -c "import vllm"`, which takes seconds
// on a real host. The agent caches the probes (refreshed in the background at
// most once a minute, and after an engine command), so a heartbeat never
// waits on them. This bench builds the same heartbeat payload both ways in
// one run, against the testkit fake engines (llama-server serving, ollama
// installed) and a fake `vllm` Python module whose import sleeps:
//   - uncached: probing every engine for each payload (what a heartbeat would
//     cost without the cache);
//   - cached: the agent's engineCatalog().cached(), as the heartbeat reads it;
//   - stale: the cache past its minute, which answers with the old copy at
//     once and refreshes in the background.
//
//   ./dev bench:engines
//   BENCH_IMPORT_S=3 BENCH_ROUNDS=3 ./dev bench:engines
import { deepStrictEqual } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";

import { buildHeartbeatBody } from "@kitt/heartbeat";
import { silentLogger } from "@kitt/protocol";
import { writeFakeEngine } from "@kitt/testkit";

const IMPORT_S = Number(process.env.BENCH_IMPORT_S ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CACHED_BUILDS = 20_000;
if (!(IMPORT_S >= 0 && IMPORT_S <= 60) || !Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 100) {
  console.error("bench/engines: BENCH_IMPORT_S must be a number 0..60 and BENCH_ROUNDS an integer 1..100");
  process.exit(2);
}

// engineCatalog is the daemon's own (not part of its public face): load it from the built package.
const daemonDist = dirname(createRequire(import.meta.url).resolve("@kitt/daemon"));
const { engineCatalog, ENGINE_PROBE_MAX_AGE_MS } = await import(pathToFileURL(join(daemonDist, "engines.js")).href);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => (x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(3));
const us = (x) => (x * 1000).toFixed(2);

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The real python3 when there is one (a fake vllm module on PYTHONPATH makes the import slow); else the testkit fake python. */
function realPython() {
  try {
    return execFileSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8", timeout: 10_000 }).trim();
  } catch {
    return undefined;
  }
}

const dir = await mkdtemp(join(tmpdir(), "kitt-bench-engines-"));
let catalog;
let started = false;
try {
  const bin = join(dir, "bin");
  await writeFakeEngine(bin, "llama-server", { version: "4120 (fake)", readyDelayMs: 100 });
  await writeFakeEngine(bin, "ollama", { version: "0.5.7" });
  const python = realPython();
  const pylib = join(dir, "pylib");
  let vllmNote;
  if (python !== undefined) {
    await mkdir(join(pylib, "vllm"), { recursive: true });
    await writeFile(join(pylib, "vllm", "__init__.py"), `# Fake vllm for bench/engines: its import takes as long as the real one's can.\nimport time\ntime.sleep(${IMPORT_S})\n__version__ = "0.6.3-fake"\n`);
    vllmNote = `${python} importing a fake vllm module that sleeps ${IMPORT_S} s`;
  } else {
    await writeFakeEngine(bin, "python", { name: "python3", version: "0.6.3-fake" });
    vllmNote = "no python3 here: the testkit fake python (no import delay; the ratio understates a real host)";
  }
  await mkdir(join(dir, "state"), { recursive: true, mode: 0o700 });

  let clock = Date.now();
  catalog = engineCatalog({
    stateDir: join(dir, "state"),
    home: join(dir, "home"),
    env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}`, PYTHONPATH: pylib },
    systemctl: null,
    logger: silentLogger,
    now: () => clock,
  });
  const port = await freePort();
  await catalog.driver("llama_cpp").start({ port }, "", { readyTimeoutMs: 30_000 });
  started = true;
  // The start refreshes the cache in the background: let it end before timing anything.
  await catalog.refresh();

  const wire = (all) => all.map(({ engine, installed, running, version, binary_path }) => ({ engine, installed, running, version, binary_path }));
  const payload = (engines) => buildHeartbeatBody({ status: "idle", current_task: "", gpus: [], engines }, 12.5);

  // Uncached: every engine probed for each payload.
  const uncachedMs = [];
  let uncachedBody;
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    uncachedBody = payload(wire(await catalog.statusAll()));
    uncachedMs.push(performance.now() - t0);
  }

  // Cached: the heartbeat's read, once the first probe is in.
  await catalog.refresh();
  const cachedBody = payload(catalog.cached());
  deepStrictEqual(cachedBody, uncachedBody, "the cached payload differs from the probed one");
  if (!cachedBody.engines.every((e) => e.installed) || !cachedBody.engines.find((e) => e.engine === "llama_cpp")?.running) {
    throw new Error(`the fakes were not all found: ${JSON.stringify(cachedBody.engines)}`);
  }
  const batchMs = [];
  for (let b = 0; b < 20; b++) {
    const t0 = performance.now();
    for (let i = 0; i < CACHED_BUILDS / 20; i++) payload(catalog.cached());
    batchMs.push((performance.now() - t0) / (CACHED_BUILDS / 20));
  }

  // Stale: past the minute, the build still answers at once; the refresh runs behind it.
  clock += ENGINE_PROBE_MAX_AGE_MS + 1;
  const s0 = performance.now();
  const staleBody = payload(catalog.cached());
  const staleMs = performance.now() - s0;
  await catalog.refresh();
  const refreshMs = performance.now() - s0;
  deepStrictEqual(staleBody, cachedBody);

  const uncached = median(uncachedMs);
  const cached = median(batchMs);
  console.log("bench/engines: heartbeat payload with the native engine probes");
  console.log(`  engines: fake ollama (installed), fake llama-server serving on ${port}, vllm: ${vllmNote}`);
  console.log(`  uncached (probe every time):  median ${ms(uncached)} ms per payload over ${ROUNDS} (min ${ms(Math.min(...uncachedMs))}, max ${ms(Math.max(...uncachedMs))})`);
  console.log(`  cached (engineCatalog):       median ${us(cached)} µs per payload over ${CACHED_BUILDS.toLocaleString("en")} (20 batches)`);
  console.log(`  ratio uncached / cached:      x${Math.round(uncached / cached).toLocaleString("en")}`);
  console.log(`  stale cache (past ${ENGINE_PROBE_MAX_AGE_MS / 1000} s):     payload in ${us(staleMs)} µs with the old copy; the background refresh took ${ms(refreshMs)} ms`);
} finally {
  if (started) {
    await catalog.driver("llama_cpp").stop().catch((err) => console.error(`bench/engines: could not stop the fake llama-server: ${err.message}`));
    await catalog.refresh();
  }
  await rm(dir, { recursive: true, force: true });
}
