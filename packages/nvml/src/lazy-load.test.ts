import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import { fakeNvmlEnv, readFakeNvmlCounters } from "@kitt/testkit/nvml";

// This file runs in its own process (forks pool): nothing has loaded koffi or
// an NVML library before these tests, in this order.
function mapped(fragment: string): boolean {
  return readFileSync("/proc/self/maps", "utf8").includes(fragment);
}

describe("loading on first use", () => {
  it("imports without loading koffi or any NVML library", async () => {
    const nvml = await import("./index.js");
    expect(typeof nvml.Nvml.open).toBe("function");
    expect(mapped("koffi")).toBe(false);
    expect(mapped("libnvidia-ml")).toBe(false);
    // With no library to find, the open fails cleanly and koffi (~9 MiB) is still not loaded.
    expect(nvml.tryOpenNvml({ libraryPath: "/nonexistent/libnvidia-ml.so.1" })).toBeUndefined();
    expect(nvml.tryOpenNvml({ libraryPath: "libkitt-surely-absent.so.9" })).toBeUndefined();
    expect(mapped("koffi")).toBe(false);
  });

  it("shuts NVML down from a process 'exit' hook that is safe to run twice", async () => {
    const { Nvml } = await import("./index.js");
    const env = await fakeNvmlEnv({ gpus: [{}] });
    const before = new Set(process.listeners("exit"));
    const nvml = Nvml.open({ env });
    // A library that is there: only now is koffi in the process.
    expect(mapped("koffi")).toBe(true);
    Nvml.open({ env });
    const added = process.listeners("exit").filter((listener) => !before.has(listener));
    expect(added).toHaveLength(1);
    const hook = added[0]!;
    hook.call(process, 0);
    expect(nvml.isInitialised).toBe(false);
    expect(await readFakeNvmlCounters(env)).toEqual({ init: 1, shutdown: 1, refcount: 0 });
    hook.call(process, 0);
    expect(await readFakeNvmlCounters(env)).toEqual({ init: 1, shutdown: 1, refcount: 0 });
  });
});
