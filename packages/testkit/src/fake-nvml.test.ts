import { chmod, mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { describe, expect, it } from "vitest";

import {
  FAKE_NVML_SOURCE,
  buildFakeNvml,
  fakeNvmlEnv,
  readFakeNvmlCounters,
  serializeFakeNvmlConfig,
  writeFakeNvmlConfig,
} from "./fake-nvml.js";

// The library's behaviour is tested through the real binding in @kitt/nvml;
// this file covers building it and the config it reads.

describe("buildFakeNvml", () => {
  it("compiles an ELF shared library once per variant", async () => {
    const a = await buildFakeNvml();
    expect(await buildFakeNvml()).toBe(a);
    expect(await buildFakeNvml({ omit: [] })).toBe(a);
    const header = (await readFile(a)).subarray(0, 4);
    expect(header.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))).toBe(true);
    expect(a.endsWith("/libnvidia-ml.so.1")).toBe(true);
  });

  it("leaves omitted symbols out of the library", async () => {
    const full = await readFile(await buildFakeNvml());
    const path = await buildFakeNvml({ omit: ["nvmlDeviceGetPowerUsage", "nvmlDeviceGetPowerUsage"] });
    expect(await buildFakeNvml({ omit: ["nvmlDeviceGetPowerUsage"] })).toBe(path);
    const partial = await readFile(path);
    expect(full.includes("nvmlDeviceGetPowerUsage")).toBe(true);
    expect(partial.includes("nvmlDeviceGetPowerUsage")).toBe(false);
    expect(partial.includes("nvmlDeviceGetTemperature")).toBe(true);
  });

  it("refuses to omit a symbol it does not have", async () => {
    await expect(buildFakeNvml({ omit: ["nvmlDeviceGetFanSpeed"] })).rejects.toThrow(
      'fake NVML has no symbol "nvmlDeviceGetFanSpeed" to omit',
    );
  });

  it("says so clearly when the compiler is missing", async () => {
    await expect(buildFakeNvml({ compiler: "/nonexistent/kitt-gcc" })).rejects.toThrow(
      "/nonexistent/kitt-gcc not found: the fake NVML library is built from C (install gcc)",
    );
  });

  it("reports a failing compiler with its exit status", async () => {
    await expect(buildFakeNvml({ compiler: "false" })).rejects.toThrow(
      "false failed to build the fake NVML library (exit 1)",
    );
  });

  it("kills a compiler that hangs", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kitt-fake-cc-"));
    const hanging = join(dir, "cc");
    await writeFile(hanging, "#!/bin/sh\nexec sleep 30\n");
    await chmod(hanging, 0o755);
    await expect(buildFakeNvml({ compiler: hanging, timeoutMs: 200 })).rejects.toThrow("within 200 ms");
  });

  it("finds its C source beside the module", async () => {
    expect((await stat(FAKE_NVML_SOURCE)).isFile()).toBe(true);
  });
});

describe("fakeNvmlEnv", () => {
  it("gives each config its own copy of the library next to its config file", async () => {
    const a = await fakeNvmlEnv({ gpus: [{}] });
    const b = await fakeNvmlEnv({ gpus: [{}, {}] });
    expect(a.KITT_NVML_PATH).not.toBe(b.KITT_NVML_PATH);
    expect(dirname(a.FAKE_NVML_CONFIG)).toBe(dirname(a.KITT_NVML_PATH));
    const config = await readFile(a.FAKE_NVML_CONFIG, "utf8");
    expect(config).toContain(`counters ${join(dirname(a.KITT_NVML_PATH), "counters")}\n`);
    expect(await readFakeNvmlCounters(a)).toEqual({ init: 0, shutdown: 0, refcount: 0 });
  });

  it("rewrites the config in place", async () => {
    const env = await fakeNvmlEnv({ gpus: [] });
    await writeFakeNvmlConfig(env, { gpus: [{ name: "NVIDIA B200" }] });
    expect(await readFile(env.FAKE_NVML_CONFIG, "utf8")).toContain("name NVIDIA B200\n");
  });
});

describe("serializeFakeNvmlConfig", () => {
  it("writes every field, with H100 defaults for the ones left out", () => {
    expect(
      serializeFakeNvmlConfig({
        driverVersion: "580.65.06",
        cudaVersion: 13000,
        initError: 9,
        forgetInitAfter: 2,
        gpus: [
          {},
          {
            name: "NVIDIA GB10",
            uuid: "GPU-x",
            pciBusId: "0000000F:01:00.0",
            memoryTotal: null,
            utilGpu: null,
            ccMajor: 12,
            ccMinor: 1,
            temperatureC: null,
            powerMw: 9_500,
            lost: "once",
          },
          { memoryTotal: 2n ** 60n, memoryUsed: 2 ** 40, lost: true },
        ],
      }),
    ).toBe(
      [
        "driver 580.65.06",
        "cuda 13000",
        "init_error 9",
        "forget_init_after 2",
        "gpu",
        "name NVIDIA H100 80GB HBM3",
        "uuid GPU-00000000-0000-4000-8000-000000000000",
        "pci 00000000:18:00.0",
        "memory 85520809984 524288000",
        "util 0 0",
        "cc 9 0",
        "temperature 35",
        "power 70000",
        "lost no",
        "gpu",
        "name NVIDIA GB10",
        "uuid GPU-x",
        "pci 0000000F:01:00.0",
        "memory none",
        "util none",
        "cc 12 1",
        "temperature none",
        "power 9500",
        "lost once",
        "gpu",
        "name NVIDIA H100 80GB HBM3",
        "uuid GPU-00000000-0000-4000-8000-000000000002",
        "pci 00000000:1A:00.0",
        "memory 1152921504606846976 1099511627776",
        "util 0 0",
        "cc 9 0",
        "temperature 35",
        "power 70000",
        "lost always",
        "",
      ].join("\n"),
    );
  });

  it.each([
    [{ gpus: [{ name: "two\nlines" }] }, "gpus[0].name must be 1-95 characters"],
    [{ gpus: [{ uuid: "x".repeat(96) }] }, "gpus[0].uuid must be 1-95 characters"],
    [{ gpus: [{}, { utilGpu: 101 }] }, "gpus[1].util must be an integer in [0, 100]"],
    [{ gpus: [{ memoryTotal: 10, memoryUsed: 11 }] }, "gpus[0].memoryUsed exceeds memoryTotal"],
    [{ gpus: [{ memoryTotal: -1 }] }, "gpus[0].memoryTotal must fit an unsigned 64-bit integer"],
    [{ gpus: [{ memoryTotal: 1.5 }] }, "gpus[0].memoryTotal must be a whole number of bytes"],
    [{ gpus: [{ powerMw: 1.5 }] }, "gpus[0].powerMw must be an integer"],
    [{ gpus: [], initError: 0 }, "initError must be an integer in [1, "],
    [{ gpus: [], driverVersion: "" }, "driverVersion must be 1-95 characters"],
  ])("rejects %j", (config, message) => {
    expect(() => serializeFakeNvmlConfig(config)).toThrow(message);
  });
});
