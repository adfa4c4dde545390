export { Nvml, tryOpenNvml } from "./nvml.js";
export { NvmlDevice } from "./device.js";
export { NvmlError, NvmlUnavailableError } from "./errors.js";
export { nvmlReturnName } from "./return-codes.js";
export { formatCudaVersion } from "./convert.js";
export { DEFAULT_NVML_LIBRARY, resolveLibraryPath } from "./library-path.js";
export type { ComputeCapability, GpuInfo, MemoryInfo, NvmlOptions, Utilization } from "./types.js";
