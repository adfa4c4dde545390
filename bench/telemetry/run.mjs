#!/usr/bin/env node
// Per-call cost of gpuSnapshot() through the NVML binding (against the fake
// libnvidia-ml from @kitt/testkit) versus spawning an nvidia-smi-like
// subprocess, both measured in this run. Needs the built packages:
//   ./dev turbo run build --filter=@kitt/hardware && ./dev exec node bench/telemetry/run.mjs
// Options: --calls N (NVML snapshots, default 20000), --spawns N (default 100), --gpus N (default 8).
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fakeNvmlEnv } from "@kitt/testkit/nvml";
import { createHostProbe, GpuSampler, runCommand } from "../../packages/hardware/dist/index.js";

const { values } = parseArgs({
  options: {
    calls: { type: "string", default: "20000" },
    spawns: { type: "string", default: "100" },
    gpus: { type: "string", default: "8" },
  },
});
const calls = Number(values.calls);
const spawns = Number(values.spawns);
const gpuCount = Number(values.gpus);
for (const [name, n] of [["calls", calls], ["spawns", spawns], ["gpus", gpuCount]]) {
  if (!Number.isInteger(n) || n < 1) {
    console.error(`bench: --${name} must be a positive integer`);
    process.exit(2);
  }
}

const GIB = 1024 ** 3;
const gpus = Array.from({ length: gpuCount }, (_, i) => ({
  name: "NVIDIA H200",
  memoryTotal: 143_771 * 1024 * 1024,
  memoryUsed: (i + 1) * GIB,
  utilGpu: (i * 13) % 100,
  temperatureC: 40 + i,
  powerMw: 350_000 + i * 1000,
}));

/** Runs fn n times after a warm-up; returns microseconds per call. */
async function perCall(n, fn) {
  for (let i = 0; i < Math.min(200, n); i++) await fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - start) / 1000 / n;
}

const dir = await mkdtemp(join(tmpdir(), "kitt-bench-telemetry-"));
try {
  // The NVML path: the real binding, the process-wide handle, a fake library.
  const env = await fakeNvmlEnv({ gpus });
  const nvmlSampler = new GpuSampler({ nvml: { libraryPath: env.KITT_NVML_PATH } });
  const first = await nvmlSampler.snapshot();
  if (nvmlSampler.source !== "nvml" || first.gpus.length !== gpuCount) {
    throw new Error(`the fake NVML did not answer (source ${nvmlSampler.source}, ${first.gpus.length} GPUs)`);
  }
  const nvmlUs = await perCall(calls, () => nvmlSampler.snapshot());

  // The subprocess path: a script that prints what nvidia-smi's CSV query prints.
  const csv = gpus
    .map((g, i) => `${i}, ${g.name}, GPU-${i}, ${g.utilGpu}, ${g.memoryUsed / 1024 / 1024}, 143771, ${g.temperatureC}, ${g.powerMw / 1000}`)
    .join("\n");
  const smi = join(dir, "nvidia-smi");
  await writeFile(smi, `#!/bin/sh\ncat <<'EOF'\n${csv}\nEOF\n`);
  await chmod(smi, 0o755);
  const host = createHostProbe({ env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ""}` } });
  const args = [
    "--query-gpu=index,name,uuid,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw",
    "--format=csv,noheader,nounits",
  ];
  const spawnUs = await perCall(spawns, async () => {
    const result = await runCommand("nvidia-smi", args, { timeoutMs: 10_000, env: host.env });
    if (result.exitCode !== 0) throw new Error(result.message);
  });
  // The same through the sampler's fallback, cache off: spawn plus parsing.
  const smiSampler = new GpuSampler({ nvml: false, nvidiaSmi: true, smiCacheMs: 0, host });
  const smiUs = await perCall(spawns, () => smiSampler.snapshot());
  if (smiSampler.source !== "nvidia-smi") throw new Error("the nvidia-smi fallback did not answer");

  const fmt = (us) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} µs`);
  console.log(`gpuSnapshot() telemetry cost, ${gpuCount} GPU${gpuCount === 1 ? "" : "s"}, node ${process.version}`);
  console.log(`  NVML binding (fake libnvidia-ml), ${calls} calls:       ${fmt(nvmlUs)} per call`);
  console.log(`  nvidia-smi-like subprocess spawn, ${spawns} spawns:     ${fmt(spawnUs)} per spawn`);
  console.log(`  sampler via nvidia-smi fallback (no cache), ${spawns} calls: ${fmt(smiUs)} per call`);
  console.log(`  ratio spawn / NVML call: ${(spawnUs / nvmlUs).toFixed(0)}x`);
  console.log("  (the fake nvidia-smi is a shell script; the real one also initialises NVML on every run, so it costs more)");
} finally {
  await rm(dir, { recursive: true, force: true });
}
