import { access, chmod, copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { findExecutable } from "@kitt/protocol";
import type { Located } from "./discovery.js";
import type { NativeEngineName } from "./engine-specs.js";
import { EngineError } from "./errors.js";
import { describeStep, type RunStep } from "./run-step.js";

export interface InstallOptions {
  /** Each line of the installer's output, and a `$ command` line before each step. */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
  /** Bounds every step instead of its own default (download 3 min, build 90 min, pip 60 min). */
  stepTimeoutMs?: number;
  /** `CMAKE_CUDA_ARCHITECTURES` for the llama.cpp build (default `native`). */
  cudaArchitectures?: string;
}

export interface InstallResult {
  version: string;
  binary_path: string;
  already_installed: boolean;
}

export interface InstallContext {
  env: NodeJS.ProcessEnv;
  home: string;
  /** Where a built llama-server goes (no sudo: the agent's own bin dir, searched after PATH). */
  binDir: string;
  run: RunStep;
  locate(): Promise<Located>;
}

const OLLAMA_SCRIPT_URL = "https://ollama.com/install.sh";
const LLAMA_CPP_REPO = "https://github.com/ggml-org/llama.cpp.git";
const MINUTE = 60_000;

class Steps {
  constructor(
    private readonly ctx: InstallContext,
    private readonly options: InstallOptions,
  ) {}

  log(line: string): void {
    this.options.onLine?.(line);
  }

  async need(command: string): Promise<string> {
    const path = await findExecutable(command, this.ctx.env);
    if (path === undefined) throw new EngineError("ENGINE_INSTALL_FAILED", `the installer needs \`${command}\`, which is not on PATH`);
    return path;
  }

  /** One bounded, cancellable, logged step; throws naming the command when it fails. */
  async run(command: string, args: string[], defaultTimeoutMs: number, cwd?: string): Promise<void> {
    const timeoutMs = this.options.stepTimeoutMs ?? defaultTimeoutMs;
    this.log(`$ ${[command, ...args].join(" ")}`);
    const result = await this.ctx.run(command, args, {
      timeoutMs,
      env: this.ctx.env,
      ...(cwd === undefined ? {} : { cwd }),
      ...(this.options.onLine === undefined ? {} : { onLine: this.options.onLine }),
      ...(this.options.signal === undefined ? {} : { signal: this.options.signal }),
    });
    if (result.cancelled) throw new EngineError("ENGINE_CANCELLED", describeStep(command, args, result, timeoutMs));
    if (result.code !== 0) throw new EngineError("ENGINE_INSTALL_FAILED", describeStep(command, args, result, timeoutMs));
  }
}

async function inTempDir<T>(prefix: string, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Ollama's own install script, downloaded to a file first (no `curl | sh`), then run with sh. */
async function installOllama(steps: Steps): Promise<void> {
  const curl = await steps.need("curl");
  const sh = await steps.need("sh");
  await inTempDir("kitt-ollama-", async (dir) => {
    const script = join(dir, "install.sh");
    await steps.run(curl, ["-fsSL", "--max-time", "150", "-o", script, OLLAMA_SCRIPT_URL], 3 * MINUTE);
    await steps.run(sh, [script], 20 * MINUTE);
  });
}

/**
 * llama.cpp from source, with CUDA when nvcc is there, built static so the one
 * binary can be copied into the agent's bin dir. (The pip package
 * llama-cpp-python has no `llama-server`, so it is no fallback.)
 */
async function installLlamaCpp(steps: Steps, ctx: InstallContext, options: InstallOptions): Promise<void> {
  const git = await steps.need("git");
  const cmake = await steps.need("cmake");
  const nvcc =
    (await findExecutable("nvcc", ctx.env)) ??
    (await access("/usr/local/cuda/bin/nvcc").then(() => "/usr/local/cuda/bin/nvcc", () => undefined));
  await inTempDir("kitt-llama-cpp-", async (dir) => {
    const source = join(dir, "llama.cpp");
    const build = join(source, "build");
    await steps.run(git, ["clone", "--depth", "1", LLAMA_CPP_REPO, source], 10 * MINUTE);
    const cuda =
      nvcc === undefined
        ? []
        : ["-DGGML_CUDA=ON", `-DCMAKE_CUDA_ARCHITECTURES=${options.cudaArchitectures ?? "native"}`, `-DCMAKE_CUDA_COMPILER=${nvcc}`];
    if (nvcc === undefined) steps.log("nvcc not found: building llama.cpp without CUDA (CPU only)");
    await steps.run(cmake, ["-S", source, "-B", build, "-DBUILD_SHARED_LIBS=OFF", "-DCMAKE_BUILD_TYPE=Release", ...cuda], 10 * MINUTE);
    const jobs = String(Math.max(1, cpus().length));
    await steps.run(cmake, ["--build", build, "--config", "Release", "-j", jobs, "--target", "llama-server"], 90 * MINUTE);
    await mkdir(ctx.binDir, { recursive: true });
    const target = join(ctx.binDir, "llama-server");
    steps.log(`Installing ${target}`);
    await copyFile(join(build, "bin", "llama-server"), target).catch((err: unknown) => {
      throw new EngineError("ENGINE_INSTALL_FAILED", `the build left no ${join(build, "bin", "llama-server")}`, { cause: err });
    });
    await chmod(target, 0o755);
  });
}

/** vLLM in its own venv (`~/.kitt/vllm-venv`), which discovery tries first. */
async function installVllm(steps: Steps, ctx: InstallContext): Promise<void> {
  const venv = join(ctx.home, ".kitt", "vllm-venv");
  const venvPython = join(venv, "bin", "python");
  if ((await findExecutable(venvPython, ctx.env)) === undefined) {
    const python = await steps.need("python3");
    await mkdir(join(ctx.home, ".kitt"), { recursive: true });
    await steps.run(python, ["-m", "venv", venv], 5 * MINUTE);
  }
  await steps.run(venvPython, ["-m", "pip", "install", "--upgrade", "vllm"], 60 * MINUTE);
}

/** Installs the engine unless it is there already; the result names the version found afterwards. */
export async function installEngine(name: NativeEngineName, ctx: InstallContext, options: InstallOptions): Promise<InstallResult> {
  const before = await ctx.locate();
  if (before.installed) {
    options.onLine?.(`${name} is already installed (${before.version === "" ? "version unknown" : `version ${before.version}`})`);
    return { version: before.version, binary_path: before.binary_path, already_installed: true };
  }
  const steps = new Steps(ctx, options);
  if (name === "ollama") await installOllama(steps);
  else if (name === "llama_cpp") await installLlamaCpp(steps, ctx, options);
  else await installVllm(steps, ctx);
  const after = await ctx.locate();
  if (!after.installed) {
    throw new EngineError("ENGINE_INSTALL_FAILED", `the ${name} installer finished but ${name} is still not found`);
  }
  options.onLine?.(`${name} installed (${after.version === "" ? "version unknown" : `version ${after.version}`}) at ${after.binary_path}`);
  return { version: after.version, binary_path: after.binary_path, already_installed: false };
}
