import { nvmlReturnName } from "./return-codes.js";

/**
 * libnvidia-ml could not be loaded (no NVIDIA driver, wrong path, not an NVML
 * library). Expected on machines without a GPU: callers catch it and fall back.
 */
export class NvmlUnavailableError extends Error {
  readonly code = "NVML_UNAVAILABLE" as const;
  /** The path or library name that was tried. */
  readonly libraryPath: string;

  constructor(libraryPath: string, reason: string, options: { cause?: unknown } = {}) {
    super(`NVML is not available (${libraryPath}): ${reason}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "NvmlUnavailableError";
    this.libraryPath = libraryPath;
  }
}

/** An NVML function returned something other than NVML_SUCCESS. */
export class NvmlError extends Error {
  readonly code = "NVML_ERROR" as const;
  /** The nvmlReturn_t value, e.g. 3. */
  readonly returnCode: number;
  /** Its nvml.h name, e.g. "NVML_ERROR_NOT_SUPPORTED". */
  readonly returnName: string;
  /** The NVML function that failed, e.g. "nvmlDeviceGetMemoryInfo". */
  readonly functionName: string;
  /** nvmlErrorString's text for the code, e.g. "Not Supported". */
  readonly description: string;

  constructor(functionName: string, returnCode: number, description: string) {
    const returnName = nvmlReturnName(returnCode);
    super(`${functionName} failed: ${description} (${returnName})`);
    this.name = "NvmlError";
    this.functionName = functionName;
    this.returnCode = returnCode;
    this.returnName = returnName;
    this.description = description;
  }
}
