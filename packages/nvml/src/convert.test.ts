import { describe, expect, it } from "vitest";

import { formatCudaVersion, normalizePciBusId, readCString, toNumber } from "./convert.js";
import { DEFAULT_NVML_LIBRARY, resolveLibraryPath } from "./library-path.js";

describe("formatCudaVersion", () => {
  it.each([
    [12080, "12.8"],
    [12040, "12.4"],
    [12010, "12.1"],
    [11080, "11.8"],
    [10020, "10.2"],
    [13000, "13.0"],
  ])("%i -> %s", (code, text) => {
    expect(formatCudaVersion(code)).toBe(text);
  });

  it("rejects what is not a version", () => {
    expect(() => formatCudaVersion(0)).toThrow(RangeError);
    expect(() => formatCudaVersion(-12080)).toThrow(RangeError);
    expect(() => formatCudaVersion(12.5)).toThrow(RangeError);
  });
});

describe("toNumber", () => {
  it("passes numbers and converts BigInts", () => {
    expect(toNumber(42)).toBe(42);
    expect(toNumber(2n ** 60n)).toBe(2 ** 60);
    expect(toNumber(85_520_809_984n)).toBe(85_520_809_984);
    expect(() => toNumber("1")).toThrow(TypeError);
    expect(() => toNumber(undefined)).toThrow(TypeError);
  });
});

describe("readCString", () => {
  it("stops at the NUL and tolerates a full buffer", () => {
    const buffer = Buffer.alloc(16);
    buffer.write("570.86.15");
    expect(readCString(buffer)).toBe("570.86.15");
    expect(readCString(Buffer.from("abc"))).toBe("abc");
  });
});

describe("normalizePciBusId", () => {
  it("widens the domain to eight digits and upper-cases the hex", () => {
    expect(normalizePciBusId("0000:3b:00.0")).toBe("00000000:3B:00.0");
    expect(normalizePciBusId("00000000:1B:00.0")).toBe("00000000:1B:00.0");
    expect(normalizePciBusId("00000001:c1:00.1")).toBe("00000001:C1:00.1");
    expect(normalizePciBusId(" weird ")).toBe("weird");
  });
});

describe("resolveLibraryPath", () => {
  it("prefers the option, then KITT_NVML_PATH, then the system soname", () => {
    expect(resolveLibraryPath({ libraryPath: "/opt/a.so", env: { KITT_NVML_PATH: "/opt/b.so" } })).toBe("/opt/a.so");
    expect(resolveLibraryPath({ env: { KITT_NVML_PATH: "/opt/b.so" } })).toBe("/opt/b.so");
    expect(resolveLibraryPath({ env: {} })).toBe(DEFAULT_NVML_LIBRARY);
    expect(resolveLibraryPath({ libraryPath: "  ", env: { KITT_NVML_PATH: "" } })).toBe("libnvidia-ml.so.1");
  });

  it("makes a relative path absolute but leaves a bare name for dlopen to search", () => {
    expect(resolveLibraryPath({ libraryPath: "lib/libnvidia-ml.so.1", env: {} })).toBe(
      `${process.cwd()}/lib/libnvidia-ml.so.1`,
    );
    expect(resolveLibraryPath({ libraryPath: "libnvidia-ml.so", env: {} })).toBe("libnvidia-ml.so");
  });
});
