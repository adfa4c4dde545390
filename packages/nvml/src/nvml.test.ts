import { describe, expect, it } from "vitest";

import { fakeNvmlEnv, readFakeNvmlCounters } from "@kitt/testkit/nvml";

import { Nvml } from "./index.js";

describe("Nvml against the fake library: one GPU", () => {
  it("reads every field of the device", async () => {
    const env = await fakeNvmlEnv({
      driverVersion: "570.86.15",
      cudaVersion: 12080,
      gpus: [
        {
          name: "NVIDIA H100 80GB HBM3",
          uuid: "GPU-4b2e9c1a-7f3d-4e2b-9a8c-1d2e3f4a5b6c",
          pciBusId: "00000000:1B:00.0",
          memoryTotal: 85_520_809_984,
          memoryUsed: 1_073_741_824,
          utilGpu: 87,
          utilMemory: 41,
          ccMajor: 9,
          ccMinor: 0,
          temperatureC: 63,
          powerMw: 412_345,
        },
      ],
    });
    const nvml = Nvml.open({ env });
    expect(nvml.libraryPath).toBe(env.KITT_NVML_PATH);
    expect(nvml.deviceCount()).toBe(1);
    expect(nvml.driverVersion()).toBe("570.86.15");
    expect(nvml.cudaDriverVersion()).toBe("12.8");
    const device = nvml.device(0);
    expect(device.index).toBe(0);
    expect(device.info()).toEqual({
      index: 0,
      name: "NVIDIA H100 80GB HBM3",
      uuid: "GPU-4b2e9c1a-7f3d-4e2b-9a8c-1d2e3f4a5b6c",
      pciBusId: "00000000:1B:00.0",
      memory: { total: 85_520_809_984, used: 1_073_741_824, free: 85_520_809_984 - 1_073_741_824 },
      utilization: { gpu: 87, memory: 41 },
      computeCapability: { major: 9, minor: 0 },
      temperatureC: 63,
      powerW: 412.345,
    });
    expect(nvml.devices()).toEqual([device.info()]);
    expect(await readFakeNvmlCounters(env)).toMatchObject({ init: 1, refcount: 1 });
  });
});

describe("Nvml against the fake library: other machines", () => {
  it("lists 8 GPUs in index order with their own ids", async () => {
    const gpus = Array.from({ length: 8 }, (_, i) => ({
      uuid: `GPU-0000000${i}-aaaa-bbbb-cccc-dddddddddddd`,
      pciBusId: `00000000:${(0x18 + 0x10 * i).toString(16).toUpperCase()}:00.0`,
      utilGpu: 10 * i,
      temperatureC: 40 + i,
    }));
    const env = await fakeNvmlEnv({ gpus });
    const nvml = Nvml.open({ env });
    expect(nvml.deviceCount()).toBe(8);
    const infos = nvml.devices();
    expect(infos.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(infos.map((g) => g.uuid)).toEqual(gpus.map((g) => g.uuid));
    expect(infos.map((g) => g.pciBusId)).toEqual(gpus.map((g) => g.pciBusId));
    expect(infos.map((g) => g.utilization?.gpu)).toEqual([0, 10, 20, 30, 40, 50, 60, 70]);
    expect(infos[7]).toMatchObject({ temperatureC: 47, name: "NVIDIA H100 80GB HBM3" });
  });

  it("reports no memory for a unified-memory GPU (DGX Spark GB10) but everything else", async () => {
    const env = await fakeNvmlEnv({
      gpus: [{ name: "NVIDIA GB10", memoryTotal: null, ccMajor: 12, ccMinor: 1, utilGpu: 5, powerMw: 11_000 }],
    });
    const device = Nvml.open({ env }).device(0);
    expect(device.memoryInfo()).toBeUndefined();
    const info = device.info();
    expect(info).not.toHaveProperty("memory");
    expect(info).toMatchObject({ name: "NVIDIA GB10", computeCapability: { major: 12, minor: 1 }, powerW: 11 });
    expect(info.utilization).toEqual({ gpu: 5, memory: 0 });
  });

  it("reports no utilization for a MIG device but its memory", async () => {
    const env = await fakeNvmlEnv({
      gpus: [{ name: "NVIDIA A100-SXM4-40GB", utilGpu: null, memoryTotal: 42_949_672_960, memoryUsed: 0 }],
    });
    const device = Nvml.open({ env }).device(0);
    expect(device.utilization()).toBeUndefined();
    const info = device.info();
    expect(info).not.toHaveProperty("utilization");
    expect(info.memory).toEqual({ total: 42_949_672_960, free: 42_949_672_960, used: 0 });
  });

  it("leaves out temperature and power the board does not report", async () => {
    const env = await fakeNvmlEnv({ gpus: [{ temperatureC: null, powerMw: null, ccMajor: null }] });
    const info = Nvml.open({ env }).device(0).info();
    expect(Object.keys(info).sort()).toEqual(["index", "memory", "name", "pciBusId", "utilization", "uuid"]);
  });

  it("normalises 64-bit values beyond 2^32 and 2^53 to numbers", async () => {
    const env = await fakeNvmlEnv({ gpus: [{ memoryTotal: 2n ** 60n, memoryUsed: 2n ** 33n + 5n }] });
    const memory = Nvml.open({ env }).device(0).memoryInfo();
    expect(memory).toBeDefined();
    expect(typeof memory!.total).toBe("number");
    expect(typeof memory!.free).toBe("number");
    expect(memory!.total).toBe(2 ** 60);
    expect(memory!.used).toBe(2 ** 33 + 5);
    expect(memory!.free).toBe(Number(2n ** 60n - (2n ** 33n + 5n)));
  });

  it("formats the CUDA driver version and returns the driver version as NVML gives it", async () => {
    const cases: Array<[number, string]> = [
      [12040, "12.4"],
      [12080, "12.8"],
      [11020, "11.2"],
      [13000, "13.0"],
    ];
    for (const [code, text] of cases) {
      const env = await fakeNvmlEnv({ gpus: [], cudaVersion: code, driverVersion: "535.183.01" });
      const nvml = Nvml.open({ env });
      expect(nvml.cudaDriverVersion()).toBe(text);
      expect(nvml.driverVersion()).toBe("535.183.01");
      expect(nvml.devices()).toEqual([]);
    }
  });
});

describe("Nvml lifecycle", () => {
  it("initialises once across many opens and calls", async () => {
    const env = await fakeNvmlEnv({ gpus: [{}, {}] });
    const first = Nvml.open({ env });
    for (let i = 0; i < 50; i++) {
      const nvml = Nvml.open({ env });
      expect(nvml).toBe(first);
      nvml.devices();
      nvml.driverVersion();
    }
    expect(await readFakeNvmlCounters(env)).toEqual({ init: 1, shutdown: 0, refcount: 1 });
  });

  it("shuts down and initialises again on the next open", async () => {
    const env = await fakeNvmlEnv({ gpus: [{}] });
    const nvml = Nvml.open({ env });
    nvml.shutdown();
    nvml.shutdown(); // a second shutdown does not unbalance NVML's reference count
    expect(nvml.isInitialised).toBe(false);
    expect(await readFakeNvmlCounters(env)).toEqual({ init: 1, shutdown: 1, refcount: 0 });
    expect(Nvml.open({ env })).toBe(nvml);
    expect(nvml.deviceCount()).toBe(1);
    expect(await readFakeNvmlCounters(env)).toEqual({ init: 2, shutdown: 1, refcount: 1 });
  });

  it("keeps one instance per library path", async () => {
    const a = await fakeNvmlEnv({ gpus: [{}] });
    const b = await fakeNvmlEnv({ gpus: [{}, {}, {}] });
    const nvmlA = Nvml.open({ env: a });
    const nvmlB = Nvml.open({ env: b });
    expect(nvmlA).not.toBe(nvmlB);
    expect([nvmlA.deviceCount(), nvmlB.deviceCount()]).toEqual([1, 3]);
  });

  it("prefers an explicit libraryPath over KITT_NVML_PATH", async () => {
    const fromEnv = await fakeNvmlEnv({ gpus: [{}] });
    const explicit = await fakeNvmlEnv({ gpus: [{}, {}] });
    const nvml = Nvml.open({ libraryPath: explicit.KITT_NVML_PATH, env: fromEnv });
    expect(nvml.libraryPath).toBe(explicit.KITT_NVML_PATH);
    expect(nvml.deviceCount()).toBe(2);
  });

  it("reads KITT_NVML_PATH from process.env by default", async () => {
    const env = await fakeNvmlEnv({ gpus: [{}, {}, {}, {}] });
    const saved = process.env.KITT_NVML_PATH;
    process.env.KITT_NVML_PATH = env.KITT_NVML_PATH;
    try {
      expect(Nvml.open().deviceCount()).toBe(4);
    } finally {
      if (saved === undefined) delete process.env.KITT_NVML_PATH;
      else process.env.KITT_NVML_PATH = saved;
    }
  });

  it("keeps device objects valid across a shutdown and re-init", async () => {
    const env = await fakeNvmlEnv({ gpus: [{ name: "NVIDIA L40S" }] });
    const nvml = Nvml.open({ env });
    const device = nvml.device(0);
    nvml.shutdown();
    // The next call brings NVML up again and fetches a handle of the new initialisation.
    expect(device.name()).toBe("NVIDIA L40S");
    expect(await readFakeNvmlCounters(env)).toMatchObject({ init: 2, refcount: 1 });
  });
});
