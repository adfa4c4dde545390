import { formatCudaVersion, readCString } from "./convert.js";
import { NvmlDevice } from "./device.js";
import { NvmlUnavailableError } from "./errors.js";
import { resolveLibraryPath } from "./library-path.js";
import { loadNativeLibrary } from "./native-library.js";
import { NvmlSession } from "./session.js";
import type { GpuInfo, NvmlOptions } from "./types.js";

const DRIVER_VERSION_BUFFER_SIZE = 80;

/** One Nvml per library path for the whole process. */
const instances = new Map<string, Nvml>();
let exitHookInstalled = false;

/**
 * The process-wide NVML handle: initialised once (nvmlInit_v2), reused by
 * every later call, shut down when the process exits. Initialising and
 * shutting down around every query, as pynvml scripts do, costs far more than
 * the query itself.
 */
export class Nvml {
  private constructor(private readonly session: NvmlSession) {}

  /**
   * Loads the library (explicit path, else KITT_NVML_PATH, else the system's
   * libnvidia-ml.so.1) on first use and initialises NVML; later calls return
   * the same instance. Throws NvmlUnavailableError when the library cannot be
   * loaded, NvmlError when nvmlInit_v2 fails.
   */
  static open(options: NvmlOptions = {}): Nvml {
    const libraryPath = resolveLibraryPath(options);
    let nvml = instances.get(libraryPath);
    if (!nvml) {
      nvml = new Nvml(new NvmlSession(loadNativeLibrary(libraryPath)));
      instances.set(libraryPath, nvml);
    }
    nvml.session.ensureInit();
    installExitHook();
    return nvml;
  }

  /** What was loaded: a path, or the bare soname dlopen searched for. */
  get libraryPath(): string {
    return this.session.libraryPath;
  }

  get isInitialised(): boolean {
    return this.session.isInitialised;
  }

  deviceCount(): number {
    const s = this.session;
    return s.run(() => {
      const out: [number] = [0];
      s.check("nvmlDeviceGetCount_v2", s.symbol("nvmlDeviceGetCount_v2")(out));
      return out[0];
    });
  }

  /** "570.86.15". */
  driverVersion(): string {
    const s = this.session;
    return s.run(() => {
      const buffer = Buffer.alloc(DRIVER_VERSION_BUFFER_SIZE);
      s.check(
        "nvmlSystemGetDriverVersion",
        s.symbol("nvmlSystemGetDriverVersion")(buffer, DRIVER_VERSION_BUFFER_SIZE),
      );
      return readCString(buffer);
    });
  }

  /**
   * The CUDA version the driver supports, "12.8" for 12080. Throws NvmlError
   * (NVML_ERROR_FUNCTION_NOT_FOUND) on drivers older than r410 that cannot tell.
   */
  cudaDriverVersion(): string {
    const s = this.session;
    return s.run(() => {
      const out: [number] = [0];
      s.check("nvmlSystemGetCudaDriverVersion", s.symbol("nvmlSystemGetCudaDriverVersion")(out));
      return formatCudaVersion(out[0]);
    });
  }

  /** The device at `index`; NvmlError (NVML_ERROR_INVALID_ARGUMENT) when there is none. */
  device(index: number): NvmlDevice {
    if (!Number.isInteger(index) || index < 0) throw new RangeError(`not a GPU index: ${index}`);
    // Resolving the handle now makes a bad index fail here, not at the first query.
    this.session.run(() => this.session.handle(index));
    return new NvmlDevice(index, this.session);
  }

  /** Every device's GpuInfo, in index order. A lost GPU fails the whole list (its NvmlError). */
  devices(): GpuInfo[] {
    const count = this.deviceCount();
    const result: GpuInfo[] = [];
    for (let index = 0; index < count; index++) result.push(this.device(index).info());
    return result;
  }

  /** nvmlShutdown. The instance stays usable: open() or any later call initialises again. */
  shutdown(): void {
    this.session.shutdown();
  }
}

/**
 * Nvml.open, or undefined when there is no NVML library to load (no NVIDIA
 * driver). Other failures, such as nvmlInit_v2 returning an error, still throw.
 */
export function tryOpenNvml(options: NvmlOptions = {}): Nvml | undefined {
  try {
    return Nvml.open(options);
  } catch (error) {
    if (error instanceof NvmlUnavailableError) return undefined;
    throw error;
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", shutdownAll);
}

/** Best effort on the way out: nothing may throw from an exit handler. */
function shutdownAll(): void {
  for (const nvml of instances.values()) {
    try {
      nvml.shutdown();
    } catch {
      // The process is ending; the driver reclaims everything anyway.
    }
  }
}
