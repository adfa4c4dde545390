import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { fakeNvmlEnv, readFakeNvmlCounters } from "@kitt/testkit/nvml";

import { Nvml, NvmlError, NvmlUnavailableError, nvmlReturnName, tryOpenNvml } from "./index.js";

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

describe("absent or unusable library", () => {
  it("throws NvmlUnavailableError naming the path when the library does not exist", () => {
    const path = "/nonexistent/kitt/libnvidia-ml.so.1";
    const error = catchError(() => Nvml.open({ libraryPath: path }));
    expect(error).toBeInstanceOf(NvmlUnavailableError);
    expect(error).toMatchObject({ code: "NVML_UNAVAILABLE", libraryPath: path });
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).not.toContain("\n");
    expect(tryOpenNvml({ libraryPath: path })).toBeUndefined();
  });

  it("treats a file that is not a shared library as unavailable", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kitt-nvml-test-"));
    const path = join(dir, "libnvidia-ml.so.1");
    await writeFile(path, "not an ELF file\n");
    expect(catchError(() => Nvml.open({ libraryPath: path }))).toBeInstanceOf(NvmlUnavailableError);
  });

  it("treats a library without nvmlInit_v2 as unavailable", async () => {
    const env = await fakeNvmlEnv({ gpus: [{}], missingSymbols: ["nvmlInit_v2"] });
    const error = catchError(() => Nvml.open({ env }));
    expect(error).toBeInstanceOf(NvmlUnavailableError);
    expect((error as Error).message).toContain("nvmlInit_v2");
    expect(tryOpenNvml({ env })).toBeUndefined();
  });
});

describe("NVML return codes become NvmlError", () => {
  it("reports an init failure with its code, name and nvmlErrorString text", async () => {
    const env = await fakeNvmlEnv({ gpus: [{}], initError: 9 });
    const error = catchError(() => Nvml.open({ env }));
    expect(error).toBeInstanceOf(NvmlError);
    expect(error).toMatchObject({
      code: "NVML_ERROR",
      returnCode: 9,
      returnName: "NVML_ERROR_DRIVER_NOT_LOADED",
      functionName: "nvmlInit_v2",
      description: "Driver Not Loaded",
    });
    expect((error as Error).message).toBe("nvmlInit_v2 failed: Driver Not Loaded (NVML_ERROR_DRIVER_NOT_LOADED)");
    // tryOpenNvml only hides an absent library; a broken driver is news.
    expect(() => tryOpenNvml({ env })).toThrow(NvmlError);
    // Each open tries again: the driver may have been loaded since.
    expect(await readFakeNvmlCounters(env)).toMatchObject({ init: 2, refcount: 0 });
  });

  it("rejects a device index the machine does not have", async () => {
    const env = await fakeNvmlEnv({ gpus: [{}, {}] });
    const nvml = Nvml.open({ env });
    expect(catchError(() => nvml.device(2))).toMatchObject({
      returnCode: 2,
      returnName: "NVML_ERROR_INVALID_ARGUMENT",
      functionName: "nvmlDeviceGetHandleByIndex_v2",
    });
    expect(() => nvml.device(-1)).toThrow(RangeError);
    expect(() => nvml.device(0.5)).toThrow(RangeError);
  });

  it("surfaces the fake's rejection of a broken config as NVML_ERROR_UNKNOWN", async () => {
    const env = await fakeNvmlEnv({ gpus: [] });
    await writeFile(env.FAKE_NVML_CONFIG, "gpu\nbogus_key 1\n");
    expect(catchError(() => Nvml.open({ env }))).toMatchObject({
      returnCode: 999,
      returnName: "NVML_ERROR_UNKNOWN",
      description: "Unknown Error",
    });
  });

  it("names every documented return code and keeps unknown ones readable", () => {
    expect(nvmlReturnName(0)).toBe("NVML_SUCCESS");
    expect(nvmlReturnName(3)).toBe("NVML_ERROR_NOT_SUPPORTED");
    expect(nvmlReturnName(15)).toBe("NVML_ERROR_GPU_IS_LOST");
    expect(nvmlReturnName(28)).toBe("NVML_ERROR_GPU_NOT_FOUND");
    expect(nvmlReturnName(999)).toBe("NVML_ERROR_UNKNOWN");
    expect(nvmlReturnName(77)).toBe("NVML_ERROR_77");
  });
});
