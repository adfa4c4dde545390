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
