import { copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { check } from "@kitt/protocol";
import { fakeNvmlEnv, type FakeGpu } from "@kitt/testkit/nvml";
import { afterEach, describe, expect, it } from "vitest";
import { GpuSampler, gpuSnapshot } from "./gpu-snapshot.js";
import { fakeCommandCalls, makeFakeMachine, type FakeMachine } from "./test-host.js";

const machines: FakeMachine[] = [];
afterEach(async () => {
  await Promise.all(machines.splice(0).map((m) => m.cleanup()));
});
async function machine(options: Parameters<typeof makeFakeMachine>[0] = {}): Promise<FakeMachine> {
  const m = await makeFakeMachine(options);
  machines.push(m);
  return m;
}

const GIB = 1024 ** 3;
const NO_NVML = { libraryPath: "/nonexistent/libnvidia-ml.so.1" };

async function samplerFor(gpus: FakeGpu[], extra: { host?: FakeMachine } = {}): Promise<GpuSampler> {
  const env = await fakeNvmlEnv({ gpus });
  const host = extra.host ?? (await machine());
  return new GpuSampler({ nvml: { libraryPath: env.KITT_NVML_PATH }, host: host.host });
}

describe("GpuSampler through NVML (fake libnvidia-ml)", () => {
  it("one GPU: every metric, and the legacy fields from GPU 0", async () => {
    const sampler = await samplerFor([
      {
        name: "NVIDIA H100 80GB HBM3",
        uuid: "GPU-4b2e9c1a-7f3d-4e2b-9a8c-1d2e3f4a5b6c",
        memoryTotal: 80 * GIB,
        memoryUsed: 12.5 * GIB,
        utilGpu: 37,
        temperatureC: 63,
        powerMw: 412_345,
      },
    ]);
    expect(await sampler.snapshot()).toEqual({
      gpus: [
        {
          index: 0,
          name: "NVIDIA H100 80GB HBM3",
          uuid: "GPU-4b2e9c1a-7f3d-4e2b-9a8c-1d2e3f4a5b6c",
          utilization_pct: 37,
          memory_used_gb: 12.5,
          memory_total_gb: 80,
          temperature_c: 63,
          power_w: 412.3,
        },
      ],
      gpu_utilization_pct: 37,
      gpu_memory_used_gb: 12.5,
    });
    expect(sampler.source).toBe("nvml");
  });

  it("eight GPUs, each with its own index, uuid and readings", async () => {
    const gpus = Array.from({ length: 8 }, (_, i): FakeGpu => ({ utilGpu: 10 * i, temperatureC: 40 + i, memoryUsed: i * GIB }));
    const snapshot = await (await samplerFor(gpus)).snapshot();
    expect(snapshot.gpus).toHaveLength(8);
    expect(snapshot.gpus.map((g) => [g.index, g.utilization_pct, g.temperature_c, g.memory_used_gb])).toEqual(
      Array.from({ length: 8 }, (_, i) => [i, 10 * i, 40 + i, i]),
    );
    expect(new Set(snapshot.gpus.map((g) => g.uuid)).size).toBe(8);
    expect(snapshot).toMatchObject({ gpu_utilization_pct: 0, gpu_memory_used_gb: 0 });
    // Spread into a heartbeat, it passes the protocol's schema.
    expect(check("heartbeatRequest", { status: "idle", ...snapshot })).toBeUndefined();
  });

  it("zero GPUs: an empty list and no legacy fields", async () => {
    expect(await (await samplerFor([])).snapshot()).toEqual({ gpus: [] });
  });

  it("unified memory (GB10): no memory fields, utilization still reported", async () => {
    const snapshot = await (await samplerFor([{ name: "NVIDIA GB10", memoryTotal: null, utilGpu: 55 }])).snapshot();
    expect(snapshot).toEqual({
      gpus: [{ index: 0, name: "NVIDIA GB10", uuid: expect.any(String), utilization_pct: 55, temperature_c: 35, power_w: 70 }],
      gpu_utilization_pct: 55,
    });
  });

  it("MIG: no utilization, memory still reported", async () => {
    const snapshot = await (
      await samplerFor([{ utilGpu: null, memoryTotal: 80 * GIB, memoryUsed: 2 * GIB, temperatureC: null, powerMw: null }])
    ).snapshot();
    expect(snapshot.gpus[0]).toEqual({
      index: 0,
      name: "NVIDIA H100 80GB HBM3",
      uuid: expect.any(String),
      memory_used_gb: 2,
      memory_total_gb: 80,
    });
    expect(snapshot.gpu_utilization_pct).toBeUndefined();
    expect(snapshot.gpu_memory_used_gb).toBe(2);
    expect(check("heartbeatRequest", snapshot)).toBeUndefined();
  });

  it("a lost GPU keeps its place without metrics; the others still report", async () => {
    const snapshot = await (await samplerFor([{ utilGpu: 5 }, { lost: true }, { utilGpu: 7 }])).snapshot();
    expect(snapshot.gpus.map((g) => g.index)).toEqual([0, 1, 2]);
    expect(snapshot.gpus[1]?.utilization_pct).toBeUndefined();
    expect(snapshot.gpus[2]?.utilization_pct).toBe(7);
  });

  it("spawns nothing while NVML works, even with the nvidia-smi fallback allowed", async () => {
    const m = await machine({ commands: { "nvidia-smi": { stdout: "" } } });
    const env = await fakeNvmlEnv({ gpus: [{}] });
    const sampler = new GpuSampler({ nvml: { libraryPath: env.KITT_NVML_PATH }, host: m.host, nvidiaSmi: true });
    for (let i = 0; i < 50; i++) await sampler.snapshot();
    expect(await fakeCommandCalls(m.bin, "nvidia-smi")).toEqual([]);
  });
});

describe("GpuSampler without NVML", () => {
  const SMI = "0, NVIDIA A100-SXM4-80GB, GPU-a, 42, 10240, 81920, 51, 250.55\n1, NVIDIA A100-SXM4-80GB, GPU-b, [N/A], [N/A], [N/A], 49, [Not Supported]\n";

  it("returns an empty snapshot and never spawns by default", async () => {
    const m = await machine({ commands: { "nvidia-smi": { stdout: SMI } } });
    const sampler = new GpuSampler({ nvml: NO_NVML, host: m.host });
    expect(await sampler.snapshot()).toEqual({ gpus: [] });
    expect(sampler.source).toBe("none");
    expect(await fakeCommandCalls(m.bin, "nvidia-smi")).toEqual([]);
  });

  it("uses nvidia-smi when allowed, reusing its answer for smiCacheMs", async () => {
    const m = await machine({ commands: { "nvidia-smi": { stdout: SMI } } });
    let now = 1000;
    const sampler = new GpuSampler({ nvml: NO_NVML, host: m.host, nvidiaSmi: true, smiCacheMs: 5000, now: () => now });
    const expected = {
      gpus: [
        {
          index: 0,
          name: "NVIDIA A100-SXM4-80GB",
          uuid: "GPU-a",
          utilization_pct: 42,
          memory_used_gb: 10,
          memory_total_gb: 80,
          temperature_c: 51,
          power_w: 250.6,
        },
        { index: 1, name: "NVIDIA A100-SXM4-80GB", uuid: "GPU-b", temperature_c: 49 },
      ],
      gpu_utilization_pct: 42,
      gpu_memory_used_gb: 10,
    };
    // Concurrent callers share one spawn.
    const [a, b] = await Promise.all([sampler.snapshot(), sampler.snapshot()]);
    expect(a).toEqual(expected);
    expect(b).toEqual(expected);
    expect(sampler.source).toBe("nvidia-smi");
    now += 4999;
    await sampler.snapshot();
    expect(await fakeCommandCalls(m.bin, "nvidia-smi")).toHaveLength(1);
    now += 2;
    await sampler.snapshot();
    expect(await fakeCommandCalls(m.bin, "nvidia-smi")).toEqual([
      "--query-gpu=index,name,uuid,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw --format=csv,noheader,nounits",
      "--query-gpu=index,name,uuid,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw --format=csv,noheader,nounits",
    ]);
  });

  it("caches a hung nvidia-smi's failure too", async () => {
    const m = await machine({ commands: { "nvidia-smi": { hangSeconds: 30 } } });
    let now = 0;
    const sampler = new GpuSampler({ nvml: NO_NVML, host: m.host, nvidiaSmi: true, smiTimeoutMs: 200, now: () => now });
    expect(await sampler.snapshot()).toEqual({ gpus: [] });
    now += 1000;
    expect(await sampler.snapshot()).toEqual({ gpus: [] });
    expect(await fakeCommandCalls(m.bin, "nvidia-smi")).toHaveLength(1);
  });

  it("tries to load NVML again only after nvmlRetryMs", async () => {
    const m = await machine();
    const env = await fakeNvmlEnv({ gpus: [{ utilGpu: 9 }] });
    let now = 0;
    // The library appears later (driver installed): point at a path that is absent now.
    const later = join(m.root, "lib", "libnvidia-ml.so.1");
    const sampler = new GpuSampler({ nvml: { libraryPath: later }, host: m.host, nvmlRetryMs: 60_000, now: () => now });
    expect(await sampler.snapshot()).toEqual({ gpus: [] });
    await mkdir(join(m.root, "lib"), { recursive: true });
    await copyFile(env.KITT_NVML_PATH, later);
    await copyFile(env.FAKE_NVML_CONFIG, join(m.root, "lib", "fake-nvml.conf"));
    now += 59_999;
    expect(await sampler.snapshot()).toEqual({ gpus: [] });
    now += 1;
    expect((await sampler.snapshot()).gpu_utilization_pct).toBe(9);
  });
});

describe("gpuSnapshot", () => {
  it("answers from the process-wide sampler on this machine", async () => {
    const first = await gpuSnapshot();
    expect(Array.isArray(first.gpus)).toBe(true);
    expect(await gpuSnapshot()).toEqual(first.gpus.length === 0 ? { gpus: [] } : expect.any(Object));
  });
});
