import { NvmlError } from "./errors.js";
import type { DeviceHandle, NativeLibrary, NvmlSymbols } from "./native-library.js";
import {
  NVML_ERROR_FUNCTION_NOT_FOUND,
  NVML_ERROR_GPU_IS_LOST,
  NVML_ERROR_NOT_SUPPORTED,
  NVML_ERROR_UNINITIALIZED,
  NVML_SUCCESS,
} from "./return-codes.js";

/** Codes after which NVML must be brought up again before the call can succeed. */
const NEEDS_REINIT = new Set([NVML_ERROR_UNINITIALIZED, NVML_ERROR_GPU_IS_LOST]);
/** Codes that mean "this device or driver does not report that", not a failure. */
const ABSENT = new Set([NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND]);

/**
 * One initialised NVML library: the init state, the device handles of the
 * current initialisation, and the call discipline (check the return code,
 * re-initialise once after UNINITIALIZED or GPU_IS_LOST, map NOT_SUPPORTED to
 * absent).
 */
export class NvmlSession {
  private initialised = false;
  private handles = new Map<number, DeviceHandle>();

  constructor(private readonly library: NativeLibrary) {}

  get libraryPath(): string {
    return this.library.path;
  }

  get isInitialised(): boolean {
    return this.initialised;
  }

  ensureInit(): void {
    if (this.initialised) return;
    this.check("nvmlInit_v2", this.library.symbols.nvmlInit_v2());
    this.initialised = true;
    this.handles.clear();
  }

  shutdown(): void {
    if (!this.initialised) return;
    this.initialised = false;
    this.handles.clear();
    const code = this.library.symbols.nvmlShutdown();
    // Someone else in the process already shut it down: the end state is what we want.
    if (code !== NVML_SUCCESS && code !== NVML_ERROR_UNINITIALIZED) throw this.error("nvmlShutdown", code);
  }

  /**
   * Runs `attempt` (which throws NvmlError on a bad return code). After
   * UNINITIALIZED or GPU_IS_LOST the library is shut down, initialised again
   * (fresh handles) and the attempt repeated once; a second failure is final.
   */
  run<T>(attempt: () => T): T {
    this.ensureInit();
    try {
      return attempt();
    } catch (error) {
      if (!(error instanceof NvmlError) || !NEEDS_REINIT.has(error.returnCode)) throw error;
    }
    this.reinitialise();
    return attempt();
  }

  /** Like run, but "not supported" (or a symbol this driver lacks) reads as undefined. */
  optional<T>(attempt: () => T): T | undefined {
    try {
      return this.run(attempt);
    } catch (error) {
      if (error instanceof NvmlError && ABSENT.has(error.returnCode)) return undefined;
      throw error;
    }
  }

  has(name: keyof NvmlSymbols): boolean {
    return this.library.symbols[name] !== undefined;
  }

  /** The bound function, or an NvmlError FUNCTION_NOT_FOUND when this driver lacks it. */
  symbol<K extends keyof NvmlSymbols>(name: K): NonNullable<NvmlSymbols[K]> {
    const fn = this.library.symbols[name];
    if (!fn) throw this.error(name, NVML_ERROR_FUNCTION_NOT_FOUND, "Function Not Found");
    return fn as NonNullable<NvmlSymbols[K]>;
  }

  /** The nvmlDevice_t of `index` for the current initialisation. */
  handle(index: number): DeviceHandle {
    const cached = this.handles.get(index);
    if (cached !== undefined) return cached;
    const out: [DeviceHandle] = [null];
    this.check("nvmlDeviceGetHandleByIndex_v2", this.library.symbols.nvmlDeviceGetHandleByIndex_v2(index, out));
    this.handles.set(index, out[0]);
    return out[0];
  }

  check(functionName: string, code: number): void {
    if (code !== NVML_SUCCESS) throw this.error(functionName, code);
  }

  private reinitialise(): void {
    if (this.initialised) {
      this.initialised = false;
      this.handles.clear();
      // Balances our earlier init; UNINITIALIZED here only means someone beat us to it.
      this.library.symbols.nvmlShutdown();
    }
    this.ensureInit();
  }

  private error(functionName: string, code: number, fallback?: string): NvmlError {
    let description: string | null | undefined;
    try {
      description = this.library.symbols.nvmlErrorString?.(code);
    } catch {
      description = undefined;
    }
    return new NvmlError(functionName, code, description || fallback || `NVML error ${code}`);
  }
}
