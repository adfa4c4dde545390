import { createRequire } from "node:module";

import type * as Koffi from "koffi";

import { NvmlUnavailableError } from "./errors.js";
import { libraryFindable } from "./library-search.js";

/** An nvmlDevice_t: an opaque pointer (a BigInt under koffi 3) we only hand back to NVML. */
export type DeviceHandle = unknown;

export interface PciInfoStruct {
  busIdLegacy: string;
  busId: string;
}
export interface MemoryStruct {
  total: number | bigint;
  free: number | bigint;
  used: number | bigint;
}
export interface UtilizationStruct {
  gpu: number;
  memory: number;
}

/** The NVML entry points the binding calls. Optional ones may be missing from older drivers. */
export interface NvmlSymbols {
  nvmlInit_v2(): number;
  nvmlShutdown(): number;
  nvmlDeviceGetCount_v2(count: [number]): number;
  nvmlDeviceGetHandleByIndex_v2(index: number, device: [DeviceHandle]): number;
  nvmlErrorString?(code: number): string | null;
  nvmlSystemGetDriverVersion?(version: Buffer, length: number): number;
  nvmlSystemGetCudaDriverVersion?(version: [number]): number;
  nvmlDeviceGetName?(device: DeviceHandle, name: Buffer, length: number): number;
  nvmlDeviceGetUUID?(device: DeviceHandle, uuid: Buffer, length: number): number;
  nvmlDeviceGetPciInfo_v3?(device: DeviceHandle, pci: Partial<PciInfoStruct>): number;
  nvmlDeviceGetPciInfo_v2?(device: DeviceHandle, pci: Partial<PciInfoStruct>): number;
  nvmlDeviceGetMemoryInfo?(device: DeviceHandle, memory: Partial<MemoryStruct>): number;
  nvmlDeviceGetUtilizationRates?(device: DeviceHandle, utilization: Partial<UtilizationStruct>): number;
  nvmlDeviceGetCudaComputeCapability?(device: DeviceHandle, major: [number], minor: [number]): number;
  nvmlDeviceGetTemperature?(device: DeviceHandle, sensor: number, temperature: [number]): number;
  nvmlDeviceGetPowerUsage?(device: DeviceHandle, milliwatts: [number]): number;
}

export interface NativeLibrary {
  readonly path: string;
  readonly symbols: NvmlSymbols;
}

type KoffiModule = typeof Koffi;
type TypeSpec = Parameters<KoffiModule["out"]>[0];

interface Declarations {
  koffi: KoffiModule;
  functions: ReadonlyArray<{ name: keyof NvmlSymbols; result: TypeSpec; args: TypeSpec[]; required: boolean }>;
}

// koffi keeps a process-wide registry of types and throws when a named type is
// declared twice. The types below are anonymous (so a second copy of this
// module, e.g. after a test runner resets its module cache, cannot collide)
// and built once per module instance.
let declarations: Declarations | undefined;
const libraries = new Map<string, NativeLibrary>();

function declare(libraryPath: string): Declarations {
  if (declarations) return declarations;
  let koffi: KoffiModule;
  try {
    // Loaded on first use, not at import: importing @kitt/nvml must not fail
    // (nor map a native module) on a machine that has no use for it.
    koffi = createRequire(import.meta.url)("koffi") as KoffiModule;
  } catch (error) {
    throw new NvmlUnavailableError(libraryPath, `cannot load koffi: ${firstLine(error)}`, { cause: error });
  }
  const uint = "unsigned int";
  const device = koffi.pointer(koffi.opaque());
  const outUint = koffi.out(koffi.pointer(uint));
  const outInt = koffi.out(koffi.pointer("int"));
  const chars = koffi.pointer("char");
  // nvml.h layouts; nvmlPciInfo_t is the _v3 one (68 bytes).
  const pciInfo = koffi.struct({
    busIdLegacy: koffi.array("char", 16),
    domain: uint,
    bus: uint,
    device: uint,
    pciDeviceId: uint,
    pciSubSystemId: uint,
    busId: koffi.array("char", 32),
  });
  const memory = koffi.struct({
    total: "unsigned long long",
    free: "unsigned long long",
    used: "unsigned long long",
  });
  const utilization = koffi.struct({ gpu: uint, memory: uint });
  const fn = (name: keyof NvmlSymbols, args: TypeSpec[], required = false, result: TypeSpec = "int") => ({
    name,
    result,
    args,
    required,
  });
  declarations = {
    koffi,
    functions: [
      fn("nvmlInit_v2", [], true),
      fn("nvmlShutdown", [], true),
      fn("nvmlDeviceGetCount_v2", [outUint], true),
      fn("nvmlDeviceGetHandleByIndex_v2", [uint, koffi.out(koffi.pointer(device))], true),
      fn("nvmlErrorString", ["int"], false, "const char *"),
      fn("nvmlSystemGetDriverVersion", [chars, uint]),
      fn("nvmlSystemGetCudaDriverVersion", [outInt]),
      fn("nvmlDeviceGetName", [device, chars, uint]),
      fn("nvmlDeviceGetUUID", [device, chars, uint]),
      fn("nvmlDeviceGetPciInfo_v3", [device, koffi.out(koffi.pointer(pciInfo))]),
      fn("nvmlDeviceGetPciInfo_v2", [device, koffi.out(koffi.pointer(pciInfo))]),
      fn("nvmlDeviceGetMemoryInfo", [device, koffi.out(koffi.pointer(memory))]),
      fn("nvmlDeviceGetUtilizationRates", [device, koffi.out(koffi.pointer(utilization))]),
      fn("nvmlDeviceGetCudaComputeCapability", [device, outInt, outInt]),
      fn("nvmlDeviceGetTemperature", [device, "int", outUint]),
      fn("nvmlDeviceGetPowerUsage", [device, outUint]),
    ],
  };
  return declarations;
}

/**
 * Loads libnvidia-ml (one handle per path for the whole process) and binds
 * every symbol it has. A failed load is not remembered: the driver may be
 * installed later in a long-running process, and dlopen of a missing file is
 * cheap.
 */
export function loadNativeLibrary(libraryPath: string): NativeLibrary {
  const cached = libraries.get(libraryPath);
  if (cached) return cached;
  // Asked before koffi loads: a host without the library never pays for it.
  if (!libraryFindable(libraryPath)) {
    throw new NvmlUnavailableError(
      libraryPath,
      libraryPath.includes("/") ? "no such file" : "not found in /etc/ld.so.cache, LD_LIBRARY_PATH or the system library directories (no NVIDIA driver installed?)",
    );
  }
  const { koffi, functions } = declare(libraryPath);
  let lib: Koffi.LibraryHandle;
  try {
    lib = koffi.load(libraryPath);
  } catch (error) {
    throw new NvmlUnavailableError(libraryPath, firstLine(error), { cause: error });
  }
  const symbols: Record<string, unknown> = {};
  for (const { name, result, args, required } of functions) {
    try {
      symbols[name] = lib.func(name, result, args);
    } catch (error) {
      // An older driver lacks newer entry points: those calls report "not
      // supported". Without the core ones this is not a usable NVML.
      if (required) {
        lib.unload();
        throw new NvmlUnavailableError(libraryPath, `library has no ${name}: not NVML, or a driver too old`, {
          cause: error,
        });
      }
    }
  }
  const loaded: NativeLibrary = { path: libraryPath, symbols: symbols as unknown as NvmlSymbols };
  libraries.set(libraryPath, loaded);
  return loaded;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n", 1)[0] ?? text;
}
