import { afterEach, describe, expect, it } from "vitest";
import { detectCpu, dockerArch, parseCpuinfo } from "./cpu.js";
import { GRACE_CPUINFO, SPARK_CPUINFO, x86Cpuinfo } from "./test-fixtures.js";
import { makeFakeMachine, type FakeMachine } from "./test-host.js";

const machines: FakeMachine[] = [];
afterEach(async () => {
  await Promise.all(machines.splice(0).map((m) => m.cleanup()));
});

describe("parseCpuinfo", () => {
  it("counts physical cores as distinct (package, core) pairs on x86", () => {
    expect(parseCpuinfo(x86Cpuinfo("AMD EPYC 9124 16-Core Processor", 1, 16, 2))).toEqual({
      model: "AMD EPYC 9124 16-Core Processor",
      cores: 16,
      threads: 32,
    });
    expect(parseCpuinfo(x86Cpuinfo("Intel(R) Xeon(R) Platinum 8480+", 2, 56, 2))).toEqual({
      model: "Intel(R) Xeon(R) Platinum 8480+",
      cores: 112,
      threads: 224,
    });
  });

  it("names Arm cores from implementer and part numbers", () => {
    expect(parseCpuinfo(GRACE_CPUINFO)).toEqual({ model: "ARM Neoverse-V2", cores: 72, threads: 72 });
    expect(parseCpuinfo(SPARK_CPUINFO)).toEqual({ model: "ARM Cortex-X925 + Cortex-A725", cores: 20, threads: 20 });
  });

  it("shows unknown Arm parts by number rather than guessing", () => {
    const text = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xfff\n";
    expect(parseCpuinfo(text).model).toBe("ARM part 0xfff");
  });

  it("yields nothing from text that is not cpuinfo", () => {
    expect(parseCpuinfo("garbage\n")).toEqual({ model: "", cores: 0, threads: 0 });
  });
});

describe("detectCpu", () => {
  it("reads /proc/cpuinfo under the host root", async () => {
    const m = await makeFakeMachine({ files: { "/proc/cpuinfo": x86Cpuinfo("AMD EPYC 7763 64-Core Processor", 2, 64, 2) } });
    machines.push(m);
    expect(await detectCpu(m.host)).toEqual({ model: "AMD EPYC 7763 64-Core Processor", cores: 128, threads: 256 });
  });

  it("falls back to the OS's view without /proc", async () => {
    const m = await makeFakeMachine({ os: { platform: "darwin", cpuModel: "Apple M3 Max", cpuCount: 16 } });
    machines.push(m);
    expect(await detectCpu(m.host)).toEqual({ model: "Apple M3 Max", cores: 16, threads: 16 });
  });
});

describe("dockerArch", () => {
  it("uses Docker's names", () => {
    expect(dockerArch("x86_64")).toBe("amd64");
    expect(dockerArch("aarch64")).toBe("arm64");
    expect(dockerArch("arm64")).toBe("arm64");
    expect(dockerArch("armv7l")).toBe("arm");
    expect(dockerArch("i686")).toBe("386");
    expect(dockerArch("ppc64le")).toBe("ppc64le");
  });
});
