import { access, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { useTempDir, writeFakeEngine } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";
import type { EngineError } from "./errors.js";
import { driverIn } from "./test-helpers.js";

const tempDir = useTempDir(afterEach, "kitt-engines-install-");

/** PATH: the fakes first, then the system's sh, cp, sleep... (never a real curl/git/cmake: the fakes shadow them). */
function pathOf(root: string): string {
  return `${join(root, "bin")}:/usr/bin:/bin`;
}

async function script(path: string, body: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

async function failure(promise: Promise<unknown>): Promise<EngineError> {
  return (await promise.then(
    () => {
      throw new Error("expected a failure");
    },
    (e: unknown) => e,
  )) as EngineError;
}

async function kittTempDirs(prefix: string): Promise<string[]> {
  return (await readdir(tmpdir())).filter((n) => n.startsWith(prefix));
}

describe("install", () => {
  it("is a success with already_installed when the engine is there, running nothing", async () => {
    const root = await tempDir();
    await writeFakeEngine(join(root, "bin"), "ollama", { version: "0.5.7" });
    await script(join(root, "bin", "curl"), `echo called >> ${join(root, "curl.calls")}; exit 1`);
    const lines: string[] = [];
    const result = await driverIn(root, "ollama", { env: { PATH: pathOf(root) } }).install({ onLine: (l) => lines.push(l) });
    expect(result).toEqual({ version: "0.5.7", binary_path: join(root, "bin", "ollama"), already_installed: true });
    expect(lines).toEqual(["ollama is already installed (version 0.5.7)"]);
    await expect(access(join(root, "curl.calls"))).rejects.toThrow();
  });

  it("ollama: downloads the install script to a file, runs it with sh, and finds the engine afterwards", async () => {
    const root = await tempDir();
    const payload = await writeFakeEngine(join(root, "payload"), "ollama", { version: "0.6.0" });
    // The fake curl writes an "install script" that puts the fake ollama on PATH.
    await script(
      join(root, "bin", "curl"),
      `echo "$*" >> ${join(root, "curl.calls")}
while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out=$2; shift; done
printf 'echo ">>> Installing ollama (fake)"\\ncp ${payload} ${join(root, "bin", "ollama")}\\necho ">>> Install complete"\\n' > "$out"`,
    );
    const lines: string[] = [];
    const result = await driverIn(root, "ollama", { env: { PATH: pathOf(root) } }).install({ onLine: (l) => lines.push(l) });
    expect(result).toEqual({ version: "0.6.0", binary_path: join(root, "bin", "ollama"), already_installed: false });
    const curlArgs = (await readFile(join(root, "curl.calls"), "utf8")).trim();
    expect(curlArgs).toMatch(/^-fsSL --max-time 150 -o \S+\/install\.sh https:\/\/ollama\.com\/install\.sh$/);
    expect(lines[0]).toMatch(/^\$ \S+\/curl -fsSL --max-time 150 -o \S+\/install\.sh https:\/\/ollama\.com\/install\.sh$/);
    expect(lines).toContain(">>> Installing ollama (fake)");
    expect(lines.at(-1)).toBe(`ollama installed (version 0.6.0) at ${join(root, "bin", "ollama")}`);
  });

  it("llama.cpp: clones, configures static (CUDA only with nvcc), builds llama-server and installs it into ~/.kitt/bin", async () => {
    const root = await tempDir();
    const payload = await writeFakeEngine(join(root, "payload"), "llama-server", { version: "5000 (abc)" });
    const calls = join(root, "calls");
    await script(join(root, "bin", "git"), `echo "git $*" >> ${calls}; mkdir -p "$5"; echo "Cloning into '$5'..."`);
    await script(
      join(root, "bin", "cmake"),
      `echo "cmake $*" >> ${calls}
if [ "$1" = "--build" ]; then mkdir -p "$2/bin" && cp ${payload} "$2/bin/llama-server" && echo "[100%] Built target llama-server"; else echo "-- Configuring done"; fi`,
    );
    const driver = driverIn(root, "llama_cpp", { env: { PATH: pathOf(root) } });
    expect(await driver.discover()).toMatchObject({ installed: false });
    const before = await kittTempDirs("kitt-llama-cpp-");
    const lines: string[] = [];
    const result = await driver.install({ onLine: (l) => lines.push(l) });
    const installed = join(root, "home", ".kitt", "bin", "llama-server");
    expect(result).toEqual({ version: "5000 (abc)", binary_path: installed, already_installed: false });
    const log = (await readFile(calls, "utf8")).trim().split("\n");
    expect(log[0]).toMatch(/^git clone --depth 1 https:\/\/github\.com\/ggml-org\/llama\.cpp\.git \S+\/llama\.cpp$/);
    expect(log[1]).toMatch(/^cmake -S \S+\/llama\.cpp -B \S+\/llama\.cpp\/build -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release/);
    expect(log[2]).toMatch(/^cmake --build \S+\/build --config Release -j \d+ --target llama-server$/);
    expect(lines).toContain("[100%] Built target llama-server");
    expect(await driver.discover()).toMatchObject({ installed: true, binary_path: installed });
    // The build tree does not outlive the install.
    expect(await kittTempDirs("kitt-llama-cpp-")).toEqual(before);
  });

  it("llama.cpp: a failed build step is an error naming the command and its last output", async () => {
    const root = await tempDir();
    await script(join(root, "bin", "git"), `mkdir -p "$5"`);
    await script(join(root, "bin", "cmake"), `echo "CMake Error: CMAKE_CUDA_COMPILER not found" >&2; exit 1`);
    const err = await failure(driverIn(root, "llama_cpp", { env: { PATH: pathOf(root) } }).install());
    expect(err.code).toBe("ENGINE_INSTALL_FAILED");
    expect(err.message).toMatch(/^`\S+\/cmake -S .*` exited with 1: CMake Error: CMAKE_CUDA_COMPILER not found$/);
  });

  it("llama.cpp: without cmake it says so", async () => {
    const root = await tempDir();
    await script(join(root, "bin", "git"), "exit 0");
    const err = await failure(driverIn(root, "llama_cpp", { env: { PATH: join(root, "bin") } }).install());
    expect(err).toMatchObject({ code: "ENGINE_INSTALL_FAILED", message: "the installer needs `cmake`, which is not on PATH" });
  });

  it("vLLM: makes ~/.kitt/vllm-venv, pip-installs vllm there, and finds it with that python", async () => {
    const root = await tempDir();
    await writeFakeEngine(join(root, "bin"), "python", { name: "python3", vllmInstalled: false, version: "0.7.2" });
    const driver = driverIn(root, "vllm", { env: { PATH: pathOf(root) }, pythons: undefined });
    expect(await driver.discover()).toMatchObject({ installed: false });
    const lines: string[] = [];
    const result = await driver.install({ onLine: (l) => lines.push(l) });
    const venvPython = join(root, "home", ".kitt", "vllm-venv", "bin", "python");
    expect(result).toEqual({ version: "0.7.2", binary_path: `${venvPython} -m vllm`, already_installed: false });
    expect(lines).toContain(`$ ${venvPython} -m pip install --upgrade vllm`);
    expect(lines).toContain("Successfully installed vllm-0.7.2");
  });

  it("a step past its bound is stopped and reported as timed out", async () => {
    const root = await tempDir();
    await script(join(root, "bin", "curl"), "echo downloading; sleep 30");
    const err = await failure(driverIn(root, "ollama", { env: { PATH: pathOf(root) } }).install({ stepTimeoutMs: 500 }));
    expect(err.code).toBe("ENGINE_INSTALL_FAILED");
    expect(err.message).toMatch(/^`\S+\/curl -fsSL .*` timed out after 1 s$/);
  });

  it("cancel stops the running step at once", async () => {
    const root = await tempDir();
    await script(join(root, "bin", "curl"), "echo downloading; sleep 30");
    const controller = new AbortController();
    const lines: string[] = [];
    const pending = driverIn(root, "ollama", { env: { PATH: pathOf(root) } }).install({
      signal: controller.signal,
      onLine: (l) => {
        lines.push(l);
        if (l === "downloading") controller.abort();
      },
    });
    const err = await failure(pending);
    expect(err.code).toBe("ENGINE_CANCELLED");
    expect(err.message).toMatch(/^`\S+\/curl -fsSL .*` was cancelled$/);
  });
});
