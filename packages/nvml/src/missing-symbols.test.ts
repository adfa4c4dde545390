import { describe, expect, it } from "vitest";

import { fakeNvmlEnv } from "@kitt/testkit/nvml";

import { Nvml, NvmlError } from "./index.js";

describe("symbols missing from an older driver", () => {
  it("reports power as not supported when nvmlDeviceGetPowerUsage is absent", async () => {
    const env = await fakeNvmlEnv({ gpus: [{ temperatureC: 44 }], missingSymbols: ["nvmlDeviceGetPowerUsage"] });
    const device = Nvml.open({ env }).device(0);
    expect(device.powerW()).toBeUndefined();
    const info = device.info();
    expect(info).not.toHaveProperty("powerW");
    expect(info.temperatureC).toBe(44);
    expect(info.memory).toBeDefined();
  });

  it("still describes the device when every optional query is absent", async () => {
    const env = await fakeNvmlEnv({
      gpus: [{ name: "Tesla V100-SXM2-16GB", uuid: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" }],
      missingSymbols: [
        "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetUtilizationRates",
        "nvmlDeviceGetCudaComputeCapability",
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetPowerUsage",
      ],
    });
    expect(Nvml.open({ env }).devices()).toEqual([
      { index: 0, name: "Tesla V100-SXM2-16GB", uuid: "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", pciBusId: "00000000:18:00.0" },
    ]);
  });

  it("falls back to nvmlDeviceGetPciInfo_v2 and reports the bus id in the v3 form", async () => {
    const env = await fakeNvmlEnv({ gpus: [{ pciBusId: "00000000:3B:00.0" }], missingSymbols: ["nvmlDeviceGetPciInfo_v3"] });
    expect(Nvml.open({ env }).device(0).pciBusId()).toBe("00000000:3B:00.0");
  });

  it("a driver without nvmlDeviceGetPciInfo*: info() and devices() still name every GPU, with an empty bus id", async () => {
    const env = await fakeNvmlEnv({
      gpus: [
        { name: "NVIDIA H200", memoryTotal: 150_754_820_096 },
        { name: "NVIDIA H200", memoryTotal: 150_754_820_096 },
      ],
      missingSymbols: ["nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2"],
    });
    const nvml = Nvml.open({ env });
    expect(() => nvml.device(0).pciBusId()).toThrow(NvmlError);
    const devices = nvml.devices();
    expect(devices.map((d) => [d.index, d.name, d.pciBusId, d.memory?.total])).toEqual([
      [0, "NVIDIA H200", "", 150_754_820_096],
      [1, "NVIDIA H200", "", 150_754_820_096],
    ]);
    expect(devices[0]?.computeCapability).toBeDefined();
  });

  it("throws FUNCTION_NOT_FOUND for a version query the driver cannot answer", async () => {
    const env = await fakeNvmlEnv({ gpus: [], missingSymbols: ["nvmlSystemGetCudaDriverVersion"] });
    const nvml = Nvml.open({ env });
    expect(() => nvml.cudaDriverVersion()).toThrow(NvmlError);
    try {
      nvml.cudaDriverVersion();
    } catch (error) {
      expect(error).toMatchObject({ returnCode: 13, returnName: "NVML_ERROR_FUNCTION_NOT_FOUND" });
    }
    expect(nvml.driverVersion()).toBe("570.86.15");
  });

  it("falls back to the return-code name when nvmlErrorString is absent", async () => {
    const env = await fakeNvmlEnv({ gpus: [], initError: 9, missingSymbols: ["nvmlErrorString"] });
    expect(() => Nvml.open({ env })).toThrow("nvmlInit_v2 failed: NVML error 9 (NVML_ERROR_DRIVER_NOT_LOADED)");
  });
});
