import { fakeNvmlEnv } from "@kitt/testkit/nvml";
import { useTempDir } from "@kitt/testkit";
import { afterEach, expect, it } from "vitest";

import { AGENT, TOKEN, closeWorld, makeWorld, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
});

it("two GPUs (fake libnvidia-ml): registration, per-GPU heartbeat telemetry and /metrics gauges", async () => {
  const nvml = await fakeNvmlEnv({
    driverVersion: "570.86.15",
    cudaVersion: 12080,
    gpus: [0, 1].map((i) => ({
      name: "NVIDIA H200",
      uuid: `GPU-fake-${i}`,
      memoryTotal: 143771 * 1024 * 1024,
      memoryUsed: (10 + i) * 1024 ** 3,
      utilGpu: 40 + i,
      utilMemory: 10,
      ccMajor: 9,
      ccMinor: 0,
      temperatureC: 50 + i,
      powerMw: 300_000 + i * 1000,
    })),
  });
  const w = await makeWorld(await tempDir());
  worlds.push(w);
  const agent = await w.start({ detect: { nvml: { libraryPath: nvml.KITT_NVML_PATH } } });
  const reg = w.server.registrations[0]?.body as Record<string, unknown>;
  expect(reg).toMatchObject({ name: AGENT, gpu_count: 2, gpu_info: "NVIDIA H200 140GB" });
  // CUDA comes from this machine's nvcc (the original's rule), so only the GPU and driver parts are fixed here.
  expect(String(reg.fingerprint)).toMatch(/^NVIDIA-H200-140GB-2x_.*_570\.86\.15_/);
  expect(JSON.parse(String(reg.hardware_details))).toMatchObject({ gpu_compute_capability: "9.0", driver_version: "570.86.15" });

  await w.server.waitFor(() => w.server.heartbeats.some((h) => Array.isArray(h.body.gpus) && (h.body.gpus as unknown[]).length === 2), 10_000);
  const beat = w.server.heartbeats.find((h) => Array.isArray(h.body.gpus))!.body;
  expect(beat).toMatchObject({ status: "idle", gpu_utilization_pct: 40 });
  expect(beat.gpus).toEqual([
    expect.objectContaining({ index: 0, uuid: "GPU-fake-0", utilization_pct: 40, temperature_c: 50, power_w: 300 }),
    expect.objectContaining({ index: 1, uuid: "GPU-fake-1", utilization_pct: 41, temperature_c: 51, power_w: 301 }),
  ]);

  const metrics = await (await fetch(`${agent.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  expect(metrics).toContain('kitt_agent_gpu_utilization_percent{gpu="1",name="NVIDIA H200",uuid="GPU-fake-1"} 41');
  expect(metrics).toContain('kitt_agent_gpu_power_watts{gpu="0",name="NVIDIA H200",uuid="GPU-fake-0"} 300');
  expect(metrics).toMatch(/kitt_agent_gpu_memory_total_bytes\{gpu="0",[^}]*\} \d+/);
  expect(metrics).toContain("# TYPE kitt_agent_heartbeats_total counter");
  expect(metrics).toMatch(/kitt_agent_heartbeats_total\{result="success"\} [1-9]/);
  expect(metrics).toMatch(/kitt_agent_heartbeat_age_seconds \d/);
  expect(metrics).toContain("# TYPE kitt_agent_job_duration_seconds histogram");
});
