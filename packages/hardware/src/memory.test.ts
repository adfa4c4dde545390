import { afterEach, describe, expect, it } from "vitest";
import { detectRamBytes, detectRamType, parseDmidecodeMemory, parseLshwMemory, ramGb } from "./memory.js";
import { DMIDECODE_DDR5, LSHW_DDR4, meminfo } from "./test-fixtures.js";
import { fakeCommandCalls, makeFakeMachine, type FakeMachine } from "./test-host.js";

const machines: FakeMachine[] = [];
afterEach(async () => {
  await Promise.all(machines.splice(0).map((m) => m.cleanup()));
});
async function machine(options: Parameters<typeof makeFakeMachine>[0]): Promise<FakeMachine> {
  const m = await makeFakeMachine(options);
  machines.push(m);
  return m;
}

describe("RAM size", () => {
  it("comes from MemTotal and rounds to whole GiB", async () => {
    const m = await machine({ files: { "/proc/meminfo": meminfo(132_000_000) } });
    const bytes = await detectRamBytes(m.host);
    expect(bytes).toBe(132_000_000 * 1024);
    expect(ramGb(bytes)).toBe(126);
  });

  it("falls back to the OS's figure without /proc/meminfo", async () => {
    const m = await machine({ os: { totalMemBytes: 64 * 1024 ** 3 } });
    expect(ramGb(await detectRamBytes(m.host))).toBe(64);
  });
});

describe("RAM type", () => {
  it("parses dmidecode, ignoring empty slots", () => {
    expect(parseDmidecodeMemory(DMIDECODE_DDR5)).toBe("DDR5");
    expect(parseDmidecodeMemory("Memory Device\n\tSize: 16 GB\n\tType: LPDDR5X\n")).toBe("LPDDR5X");
    expect(parseDmidecodeMemory("Memory Device\n\tSize: No Module Installed\n\tType: DDR4\n")).toBe("");
  });

  it("parses lshw descriptions", () => {
    expect(parseLshwMemory(LSHW_DDR4)).toBe("DDR4");
    expect(parseLshwMemory("  *-memory\n       description: System Memory\n")).toBe("");
  });

  it("uses dmidecode when it works and never asks lshw then", async () => {
    const m = await machine({ commands: { dmidecode: { stdout: DMIDECODE_DDR5 }, lshw: { stdout: LSHW_DDR4 } } });
    expect(await detectRamType(m.host)).toBe("DDR5");
    expect(await fakeCommandCalls(m.bin, "dmidecode")).toEqual(["-t memory"]);
    expect(await fakeCommandCalls(m.bin, "lshw")).toEqual([]);
  });

  it("falls back to lshw when dmidecode needs root", async () => {
    const m = await machine({
      commands: {
        dmidecode: { stderr: "/sys/firmware/dmi/tables/smbios_entry_point: Permission denied\n", exitCode: 1 },
        lshw: { stdout: LSHW_DDR4 },
      },
    });
    expect(await detectRamType(m.host)).toBe("DDR4");
  });

  it("is empty when neither tool is installed", async () => {
    const m = await machine({});
    expect(await detectRamType(m.host)).toBe("");
  });
});
