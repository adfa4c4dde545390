import { normalizePciBusId, readCString, toNumber } from "./convert.js";
import type { MemoryStruct, PciInfoStruct, UtilizationStruct } from "./native-library.js";
import type { NvmlSession } from "./session.js";
import type { ComputeCapability, GpuInfo, MemoryInfo, Utilization } from "./types.js";

// Buffer sizes from nvml.h (the _V2_ ones are the larger, current ones).
const NAME_BUFFER_SIZE = 96;
const UUID_BUFFER_SIZE = 96;
const NVML_TEMPERATURE_GPU = 0;

/**
 * One GPU by index. Holds no native handle itself: each call asks the session
 * for the handle of the current initialisation, so a device object stays
 * valid across the re-initialisation after a lost GPU.
 */
export class NvmlDevice {
  constructor(
    readonly index: number,
    private readonly session: NvmlSession,
  ) {}

  name(): string {
    return this.readString("nvmlDeviceGetName", NAME_BUFFER_SIZE);
  }

  uuid(): string {
    return this.readString("nvmlDeviceGetUUID", UUID_BUFFER_SIZE);
  }

  /** "00000000:1B:00.0". Falls back to nvmlDeviceGetPciInfo_v2 on drivers older than r410. */
  pciBusId(): string {
    const s = this.session;
    return s.run(() => {
      const pci: Partial<PciInfoStruct> = {};
      if (s.has("nvmlDeviceGetPciInfo_v3")) {
        s.check("nvmlDeviceGetPciInfo_v3", s.symbol("nvmlDeviceGetPciInfo_v3")(s.handle(this.index), pci));
        return normalizePciBusId(pci.busId ?? "");
      }
      // The v2 struct is a prefix of v3's (52 of its 68 bytes); its bus id sits where v3 keeps busIdLegacy.
      s.check("nvmlDeviceGetPciInfo_v2", s.symbol("nvmlDeviceGetPciInfo_v2")(s.handle(this.index), pci));
      return normalizePciBusId(pci.busIdLegacy ?? "");
    });
  }

  /** Bytes; undefined where the GPU has no dedicated memory to report (unified memory, e.g. GB10). */
  memoryInfo(): MemoryInfo | undefined {
    const s = this.session;
    return s.optional(() => {
      const out: Partial<MemoryStruct> = {};
      s.check("nvmlDeviceGetMemoryInfo", s.symbol("nvmlDeviceGetMemoryInfo")(s.handle(this.index), out));
      return { total: toNumber(out.total), free: toNumber(out.free), used: toNumber(out.used) };
    });
  }

  /** Percent; undefined where not reported (MIG devices). */
  utilization(): Utilization | undefined {
    const s = this.session;
    return s.optional(() => {
      const out: Partial<UtilizationStruct> = {};
      s.check("nvmlDeviceGetUtilizationRates", s.symbol("nvmlDeviceGetUtilizationRates")(s.handle(this.index), out));
      return { gpu: toNumber(out.gpu), memory: toNumber(out.memory) };
    });
  }

  computeCapability(): ComputeCapability | undefined {
    const s = this.session;
    return s.optional(() => {
      const major: [number] = [0];
      const minor: [number] = [0];
      s.check(
        "nvmlDeviceGetCudaComputeCapability",
        s.symbol("nvmlDeviceGetCudaComputeCapability")(s.handle(this.index), major, minor),
      );
      return { major: major[0], minor: minor[0] };
    });
  }

  /** Degrees Celsius of the GPU die. */
  temperatureC(): number | undefined {
    const s = this.session;
    return s.optional(() => {
      const out: [number] = [0];
      s.check(
        "nvmlDeviceGetTemperature",
        s.symbol("nvmlDeviceGetTemperature")(s.handle(this.index), NVML_TEMPERATURE_GPU, out),
      );
      return out[0];
    });
  }

  /** Watts (NVML reports milliwatts). */
  powerW(): number | undefined {
    const s = this.session;
    return s.optional(() => {
      const out: [number] = [0];
      s.check("nvmlDeviceGetPowerUsage", s.symbol("nvmlDeviceGetPowerUsage")(s.handle(this.index), out));
      return out[0] / 1000;
    });
  }

  /**
   * Every field, each read once; fields the device does not report are left
   * out. `pciBusId` is "" where the driver has no nvmlDeviceGetPciInfo*
   * (older drivers and some boards): the other fields still describe the GPU.
   */
  info(): GpuInfo {
    const pciBusId = this.session.optional(() => this.pciBusId()) ?? "";
    const info: GpuInfo = { index: this.index, name: this.name(), uuid: this.uuid(), pciBusId };
    const memory = this.memoryInfo();
    if (memory) info.memory = memory;
    const utilization = this.utilization();
    if (utilization) info.utilization = utilization;
    const computeCapability = this.computeCapability();
    if (computeCapability) info.computeCapability = computeCapability;
    const temperatureC = this.temperatureC();
    if (temperatureC !== undefined) info.temperatureC = temperatureC;
    const powerW = this.powerW();
    if (powerW !== undefined) info.powerW = powerW;
    return info;
  }

  private readString(functionName: "nvmlDeviceGetName" | "nvmlDeviceGetUUID", size: number): string {
    const s = this.session;
    return s.run(() => {
      const buffer = Buffer.alloc(size);
      s.check(functionName, s.symbol(functionName)(s.handle(this.index), buffer, size));
      return readCString(buffer);
    });
  }
}
