import { describe, expect, it } from "vitest";

import { fakeNvmlEnv, readFakeNvmlCounters } from "@kitt/testkit/nvml";

import { Nvml, NvmlError } from "./index.js";

describe("re-initialisation", () => {
  it("recovers from a GPU that is lost once: re-init, retry, correct values", async () => {
    const env = await fakeNvmlEnv({ gpus: [{ name: "NVIDIA H200", lost: "once", temperatureC: 51 }] });
    const nvml = Nvml.open({ env });
    const device = nvml.device(0);
    expect(device.name()).toBe("NVIDIA H200");
    expect(await readFakeNvmlCounters(env)).toEqual({ init: 2, shutdown: 1, refcount: 1 });
    // Recovered for good: no further re-init.
    expect(device.info()).toMatchObject({ name: "NVIDIA H200", temperatureC: 51 });
    expect(await readFakeNvmlCounters(env)).toEqual({ init: 2, shutdown: 1, refcount: 1 });
  });

  it("gives up after one retry on a GPU that stays lost, leaving the others usable", async () => {
    const env = await fakeNvmlEnv({ gpus: [{}, { lost: true }, { name: "NVIDIA H100 PCIe" }] });
    const nvml = Nvml.open({ env });
    let error: unknown;
    try {
      nvml.device(1).temperatureC();
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(NvmlError);
    expect(error).toMatchObject({
      returnCode: 15,
      returnName: "NVML_ERROR_GPU_IS_LOST",
      functionName: "nvmlDeviceGetTemperature",
      description: "GPU is lost",
    });
    expect(await readFakeNvmlCounters(env)).toEqual({ init: 2, shutdown: 1, refcount: 1 });
    expect(nvml.device(2).name()).toBe("NVIDIA H100 PCIe");
    expect(() => nvml.devices()).toThrow(NvmlError);
  });

  it("initialises again after NVML_ERROR_UNINITIALIZED and retries the call", async () => {
    // After 3 device queries the fake forgets its init, as if another NVML
    // user in the process had called nvmlShutdown.
    const env = await fakeNvmlEnv({ gpus: [{ uuid: "GPU-11111111-2222-3333-4444-555555555555" }], forgetInitAfter: 3 });
    const nvml = Nvml.open({ env });
    const device = nvml.device(0);
    for (let i = 0; i < 3; i++) device.uuid();
    expect(await readFakeNvmlCounters(env)).toEqual({ init: 1, shutdown: 0, refcount: 1 });
    expect(device.uuid()).toBe("GPU-11111111-2222-3333-4444-555555555555");
    // Our balancing nvmlShutdown found NVML already down (UNINITIALIZED, ignored): we hold exactly one init again.
    expect(await readFakeNvmlCounters(env)).toMatchObject({ init: 2, refcount: 1 });
  });
});
