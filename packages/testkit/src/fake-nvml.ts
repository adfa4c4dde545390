/**
 * The fake libnvidia-ml.so.1: compiles native/fake-nvml.c with gcc and writes
 * the config the library reads at nvmlInit_v2. Tests load it through the real
 * @kitt/nvml binding, so nothing above the C boundary is mocked.
 */
import { execFile } from "node:child_process";
import { rmSync } from "node:fs";
import { copyFile, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The C sources, found from this module: src/ or dist/ sit beside native/. */
export const FAKE_NVML_SOURCE = fileURLToPath(new URL("../native/fake-nvml.c", import.meta.url));
const FAKE_NVML_SOURCES = [FAKE_NVML_SOURCE, fileURLToPath(new URL("../native/fake-nvml-config.c", import.meta.url))];

/** The NVML symbols the fake exports; any of them can be left out of a build. */
export const FAKE_NVML_SYMBOLS = [
  "nvmlInit_v2",
  "nvmlShutdown",
  "nvmlErrorString",
  "nvmlSystemGetDriverVersion",
  "nvmlSystemGetCudaDriverVersion",
  "nvmlDeviceGetCount_v2",
  "nvmlDeviceGetHandleByIndex_v2",
  "nvmlDeviceGetName",
  "nvmlDeviceGetUUID",
  "nvmlDeviceGetPciInfo_v3",
  "nvmlDeviceGetPciInfo_v2",
  "nvmlDeviceGetMemoryInfo",
  "nvmlDeviceGetUtilizationRates",
  "nvmlDeviceGetCudaComputeCapability",
  "nvmlDeviceGetTemperature",
  "nvmlDeviceGetPowerUsage",
] as const;
export type FakeNvmlSymbol = (typeof FAKE_NVML_SYMBOLS)[number];

/** One fake GPU. Omitted fields get plausible H100 values; `null` makes NVML answer NOT_SUPPORTED. */
export interface FakeGpu {
  name?: string;
  uuid?: string;
  /** "00000000:1B:00.0". */
  pciBusId?: string;
  /** Bytes; a bigint for values past 2^53. `null` on either => memory NOT_SUPPORTED (unified memory). */
  memoryTotal?: number | bigint | null;
  memoryUsed?: number | bigint | null;
  /** Percent; `null` on either => utilization NOT_SUPPORTED (MIG). */
  utilGpu?: number | null;
  utilMemory?: number | null;
  /** `null` on either => NOT_SUPPORTED. */
  ccMajor?: number | null;
  ccMinor?: number | null;
  temperatureC?: number | null;
  powerMw?: number | null;
  /** true: every query on this GPU returns GPU_IS_LOST. "once": the first one does, until NVML is re-initialised. */
  lost?: boolean | "once";
}

export interface FakeNvmlConfig {
  gpus: FakeGpu[];
  /** Default "570.86.15". */
  driverVersion?: string;
  /** nvmlSystemGetCudaDriverVersion's integer, default 12080; 0 => NOT_SUPPORTED. */
  cudaVersion?: number;
  /** nvmlInit_v2 returns this code (e.g. 9, NVML_ERROR_DRIVER_NOT_LOADED). */
  initError?: number;
  /** Symbols to leave out of the build, playing an older driver. */
  missingSymbols?: string[];
  /**
   * After this many device queries the library drops its init state once, as
   * if another NVML user in the process had shut it down: the next query
   * returns NVML_ERROR_UNINITIALIZED.
   */
  forgetInitAfter?: number;
}

export type FakeNvmlEnv = { KITT_NVML_PATH: string; FAKE_NVML_CONFIG: string };

/** What the library counted, read back from the file it rewrites at every init and shutdown. */
export interface FakeNvmlCounters {
  init: number;
  shutdown: number;
  /** NVML's init reference count right now. */
  refcount: number;
}

export interface BuildFakeNvmlOptions {
  omit?: readonly string[];
  /** The C compiler, default "gcc" from PATH. */
  compiler?: string;
  /** Default 60 s: a loaded 2-core CI box is slow, a hung compiler must still end. */
  timeoutMs?: number;
}

const LIBRARY_NAME = "libnvidia-ml.so.1";
const CONFIG_NAME = "fake-nvml.conf";
const COUNTERS_NAME = "counters";

const builds = new Map<string, Promise<string>>();
const tempDirs: string[] = [];
let cleanupInstalled = false;

/**
 * Compiles the fake into a temp dir and returns the library's path. Once per
 * process per variant (set of omitted symbols); later calls share the result.
 */
export function buildFakeNvml(options: BuildFakeNvmlOptions = {}): Promise<string> {
  const omit = [...new Set(options.omit ?? [])].sort();
  for (const symbol of omit) {
    if (!(FAKE_NVML_SYMBOLS as readonly string[]).includes(symbol)) {
      return Promise.reject(new Error(`fake NVML has no symbol ${JSON.stringify(symbol)} to omit`));
    }
  }
  const compiler = options.compiler ?? "gcc";
  const key = `${compiler}\0${omit.join(",")}`;
  let build = builds.get(key);
  if (!build) {
    build = compile(compiler, omit, options.timeoutMs ?? 60_000);
    builds.set(key, build);
    // A failed build (no gcc yet) must not poison later attempts.
    build.catch(() => builds.delete(key));
  }
  return build;
}

async function compile(compiler: string, omit: readonly string[], timeoutMs: number): Promise<string> {
  const dir = await tempDir("kitt-fake-nvml-build-");
  const output = join(dir, LIBRARY_NAME);
  const args = [
    "-shared",
    "-fPIC",
    "-O2",
    "-fvisibility=hidden",
    ...omit.map((symbol) => `-DFAKE_NVML_OMIT_${symbol}`),
    "-o",
    output,
    ...FAKE_NVML_SOURCES,
    "-ldl",
  ];
  await new Promise<void>((resolve, reject) => {
    execFile(compiler, args, { timeout: timeoutMs, killSignal: "SIGKILL" }, (error, _stdout, stderr) => {
      if (!error) return resolve();
      const failure = error as NodeJS.ErrnoException & { killed?: boolean; code?: unknown };
      if (failure.code === "ENOENT") {
        reject(new Error(`${compiler} not found: the fake NVML library is built from C (install gcc)`));
      } else if (failure.killed) {
        reject(new Error(`${compiler} did not finish building the fake NVML library within ${timeoutMs} ms`));
      } else {
        const detail = String(stderr).trim().split("\n").slice(0, 5).join(" | ");
        reject(new Error(`${compiler} failed to build the fake NVML library (exit ${String(failure.code)}): ${detail}`));
      }
    });
  });
  return output;
}

/**
 * A fake NVML set up as `config` says: the library is copied into a fresh dir
 * next to its config file, so each call yields a distinct library path (its
 * own NVML singleton in @kitt/nvml, its own state in the C library). Pass the
 * result as `env` to Nvml.open or merge it into process.env.
 */
export async function fakeNvmlEnv(config: FakeNvmlConfig): Promise<FakeNvmlEnv> {
  const text = serializeFakeNvmlConfig(config);
  const built = await buildFakeNvml({ omit: config.missingSymbols ?? [] });
  const dir = await tempDir("kitt-fake-nvml-");
  const library = join(dir, LIBRARY_NAME);
  const configFile = join(dir, CONFIG_NAME);
  await copyFile(built, library);
  await writeFile(configFile, `${text}counters ${join(dir, COUNTERS_NAME)}\n`);
  return { KITT_NVML_PATH: library, FAKE_NVML_CONFIG: configFile };
}

/** Rewrites the config of a fake from fakeNvmlEnv; it takes effect at the next nvmlInit_v2 from zero. */
export async function writeFakeNvmlConfig(env: FakeNvmlEnv, config: FakeNvmlConfig): Promise<void> {
  const counters = join(dirname(env.FAKE_NVML_CONFIG), COUNTERS_NAME);
  await writeFile(env.FAKE_NVML_CONFIG, `${serializeFakeNvmlConfig(config)}counters ${counters}\n`);
}

export async function readFakeNvmlCounters(env: FakeNvmlEnv): Promise<FakeNvmlCounters> {
  let text: string;
  try {
    text = await readFile(join(dirname(env.FAKE_NVML_CONFIG), COUNTERS_NAME), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { init: 0, shutdown: 0, refcount: 0 };
    throw error;
  }
  const counters: FakeNvmlCounters = { init: 0, shutdown: 0, refcount: 0 };
  for (const line of text.split("\n")) {
    const [key, value] = line.split(" ");
    if (key === "init" || key === "shutdown" || key === "refcount") counters[key] = Number(value);
  }
  return counters;
}

/** The line format fake-nvml.c parses; throws on values the C side would reject. */
export function serializeFakeNvmlConfig(config: FakeNvmlConfig): string {
  const lines = [
    `driver ${text("driverVersion", config.driverVersion ?? "570.86.15")}`,
    `cuda ${int("cudaVersion", config.cudaVersion ?? 12080, 0)}`,
  ];
  if (config.initError !== undefined) lines.push(`init_error ${int("initError", config.initError, 1)}`);
  if (config.forgetInitAfter !== undefined) {
    lines.push(`forget_init_after ${int("forgetInitAfter", config.forgetInitAfter, 0)}`);
  }
  config.gpus.forEach((gpu, i) => lines.push(...gpuLines(gpu, i)));
  return `${lines.join("\n")}\n`;
}

function gpuLines(gpu: FakeGpu, i: number): string[] {
  const at = (field: string) => `gpus[${i}].${field}`;
  const lines = [
    "gpu",
    `name ${text(at("name"), gpu.name ?? "NVIDIA H100 80GB HBM3")}`,
    `uuid ${text(at("uuid"), gpu.uuid ?? `GPU-00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`)}`,
    `pci ${text(at("pciBusId"), gpu.pciBusId ?? `00000000:${(0x18 + i).toString(16).toUpperCase().padStart(2, "0")}:00.0`)}`,
  ];
  const total = gpu.memoryTotal === undefined ? 85_520_809_984 : gpu.memoryTotal;
  const used = gpu.memoryUsed === undefined ? 524_288_000 : gpu.memoryUsed;
  if (total === null || used === null) {
    lines.push("memory none");
  } else {
    const t = bytes(at("memoryTotal"), total);
    const u = bytes(at("memoryUsed"), used);
    if (u > t) throw new Error(`fake NVML config: ${at("memoryUsed")} exceeds memoryTotal`);
    lines.push(`memory ${t} ${u}`);
  }
  lines.push(pair("util", at("util"), gpu.utilGpu, gpu.utilMemory, 0, 0, 100));
  lines.push(pair("cc", at("cc"), gpu.ccMajor, gpu.ccMinor, 9, 0, 99));
  lines.push(single("temperature", at("temperatureC"), gpu.temperatureC, 35));
  lines.push(single("power", at("powerMw"), gpu.powerMw, 70_000));
  lines.push(`lost ${gpu.lost === "once" ? "once" : gpu.lost ? "always" : "no"}`);
  return lines;
}

function pair(
  key: string,
  field: string,
  a: number | null | undefined,
  b: number | null | undefined,
  defaultA: number,
  defaultB: number,
  max: number,
): string {
  if (a === null || b === null) return `${key} none`;
  return `${key} ${int(field, a ?? defaultA, 0, max)} ${int(field, b ?? defaultB, 0, max)}`;
}

function single(key: string, field: string, value: number | null | undefined, fallback: number): string {
  return value === null ? `${key} none` : `${key} ${int(field, value ?? fallback, 0)}`;
}

function text(field: string, value: string): string {
  // 95 characters: the value must fit NVML's 96-byte buffers with its NUL.
  if (!value || value.length > 95 || /[\r\n]/.test(value) || value !== value.trim()) {
    throw new Error(`fake NVML config: ${field} must be 1-95 characters on one line, got ${JSON.stringify(value)}`);
  }
  return value;
}

function int(field: string, value: number, min: number, max = 0xffff_ffff): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`fake NVML config: ${field} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

function bytes(field: string, value: number | bigint): bigint {
  if (typeof value === "number" && !Number.isInteger(value)) {
    throw new Error(`fake NVML config: ${field} must be a whole number of bytes, got ${value}`);
  }
  const big = BigInt(value);
  if (big < 0n || big > 0xffff_ffff_ffff_ffffn) {
    throw new Error(`fake NVML config: ${field} must fit an unsigned 64-bit integer, got ${value}`);
  }
  return big;
}

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(dir);
  if (!cleanupInstalled) {
    cleanupInstalled = true;
    // Synchronous: 'exit' handlers cannot await. The libraries may still be
    // mapped; unlinking a mapped file is fine on Linux.
    process.once("exit", () => {
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}
