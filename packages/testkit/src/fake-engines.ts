/**
 * Stand-ins for native inference engines, written as real executables (Node
 * scripts) so an agent finds, starts, probes and stops them exactly as the
 * real ones: `ollama`, `llama-server`, and a `python` that "has" the vllm
 * module. Each prints a version, serves its readiness endpoint on the asked
 * port after a delay, and can crash at start, never become ready, or ignore
 * SIGTERM. Every call is appended to `<dir>/<name>.calls.jsonl`.
 */
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export type FakeEngineKind = "ollama" | "llama-server" | "python";

export interface FakeEngineOptions {
  /** File name (default: the kind). */
  name?: string;
  /** Printed by the version probe (default `0.9.1-fake`). */
  version?: string;
  /** Milliseconds between start and serving the readiness endpoint (default 300). */
  readyDelayMs?: number;
  /** `serve` (default), `crash` (exit 3 at once with a last line), `never-ready`, `ignore-term` (serves, survives SIGTERM). */
  behaviour?: "serve" | "crash" | "never-ready" | "ignore-term";
  /** python only: whether `import vllm` works from the start (default true); `-m pip install vllm` makes it work. */
  vllmInstalled?: boolean;
  /** Also start a worker process (an idle node) in the same process group and print `worker <pid>`. */
  worker?: boolean;
}

export interface FakeEngineCall {
  argv: string[];
  /** The OLLAMA_* / CUDA_* variables it saw. */
  env: Record<string, string>;
  pid: number;
}

const SCRIPT = String.raw`
(async () => {
  const fs = await import("node:fs");
  const path = await import("node:path");
  const http = await import("node:http");
  const { spawn } = await import("node:child_process");
  const self = process.argv[1];
  const here = path.dirname(self);
  const argv = process.argv.slice(2);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(OLLAMA|CUDA)_/.test(k)));
  fs.appendFileSync(path.join(CONFIG.dir, CONFIG.name + ".calls.jsonl"), JSON.stringify({ argv, env, pid: process.pid }) + "\n");
  const out = (line) => process.stdout.write(line + "\n");
  const err = (line) => process.stderr.write(line + "\n");
  const marker = path.join(here, ".vllm-installed");
  const vllmThere = () => CONFIG.vllmInstalled === true || fs.existsSync(marker);
  const flag = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };

  function serve(port, readyPath, body) {
    if (!Number.isInteger(port) || port <= 0) { err("fake engine: no port given"); process.exit(2); }
    out("fake " + CONFIG.kind + " " + CONFIG.version + " starting on port " + port + " (pid " + process.pid + ")");
    out("loading model " + (flag("--model") ?? "(none)"));
    if (CONFIG.worker) {
      const worker = spawn(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)"], { stdio: "ignore" });
      out("worker " + worker.pid);
    }
    process.on("SIGTERM", () => {
      if (CONFIG.behaviour === "ignore-term") { out("ignoring SIGTERM"); return; }
      out("received SIGTERM, shutting down");
      process.exit(0);
    });
    if (CONFIG.behaviour === "crash") {
      err("fatal: CUDA error: out of memory (fake)");
      setTimeout(() => process.exit(3), 50);
      return;
    }
    setInterval(() => {}, 1 << 30);
    if (CONFIG.behaviour === "never-ready") { out("warming up forever"); return; }
    setTimeout(() => {
      const server = http.createServer((req, res) => {
        const ok = req.url === readyPath;
        res.writeHead(ok ? 200 : 404, { "content-type": "application/json" });
        res.end(ok ? JSON.stringify(body) : "{}");
      });
      server.listen(port, "127.0.0.1", () => out("serving on 127.0.0.1:" + port));
    }, CONFIG.readyDelayMs);
  }

  if (CONFIG.kind === "ollama") {
    if (argv[0] === "--version") { err("Warning: could not connect to a running Ollama instance"); out("ollama version is " + CONFIG.version); return; }
    if (argv[0] === "serve") {
      const hostPort = process.env.OLLAMA_HOST ?? "127.0.0.1:11434";
      return serve(Number(hostPort.split(":").pop()), "/api/version", { version: CONFIG.version });
    }
    err("fake ollama: unknown command " + argv.join(" "));
    process.exit(2);
  }
  if (CONFIG.kind === "llama-server") {
    if (argv[0] === "--version") { err("version: " + CONFIG.version); err("built with fake cc for fake"); return; }
    return serve(Number(flag("--port")), "/health", { status: "ok" });
  }
  // python
  if (argv[0] === "-c") {
    if (!/import vllm/.test(argv[1] ?? "")) { err("fake python runs only the vllm probe"); process.exit(1); }
    if (!vllmThere()) { err("ModuleNotFoundError: No module named 'vllm'"); process.exit(1); }
    out(CONFIG.version);
    return;
  }
  if (argv[0] === "-m" && argv[1] === "vllm.entrypoints.openai.api_server") {
    if (!vllmThere()) { err("No module named vllm"); process.exit(1); }
    return serve(Number(flag("--port")), "/health", {});
  }
  if (argv[0] === "-m" && argv[1] === "venv") {
    const bin = path.join(argv[2], "bin");
    fs.mkdirSync(bin, { recursive: true });
    const text = fs.readFileSync(self, "utf8").replace(/"vllmInstalled":true/, '"vllmInstalled":false');
    fs.writeFileSync(path.join(bin, "python"), text, { mode: 0o755 });
    out("created venv " + argv[2]);
    return;
  }
  if (argv[0] === "-m" && argv[1] === "pip" && argv.includes("vllm")) {
    out("Collecting vllm");
    out("Successfully installed vllm-" + CONFIG.version);
    fs.writeFileSync(marker, "");
    return;
  }
  err("fake python: unsupported arguments " + argv.join(" "));
  process.exit(2);
})();
`;

/** Writes a fake engine executable into `dir` and returns its path. */
export async function writeFakeEngine(dir: string, kind: FakeEngineKind, options: FakeEngineOptions = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const name = options.name ?? kind;
  const config = {
    kind,
    name,
    dir,
    version: options.version ?? "0.9.1-fake",
    readyDelayMs: options.readyDelayMs ?? 300,
    behaviour: options.behaviour ?? "serve",
    vllmInstalled: options.vllmInstalled ?? true,
    worker: options.worker === true,
  };
  const path = join(dir, name);
  await writeFile(path, `#!${process.execPath}\n// Fake ${kind} for tests (not the real engine).\nconst CONFIG = ${JSON.stringify(config)};\n${SCRIPT}`);
  await chmod(path, 0o755);
  return path;
}

/** Every call of the fake named `name` in `dir`, oldest first. */
export async function readFakeEngineCalls(dir: string, name: string): Promise<FakeEngineCall[]> {
  const text = await readFile(join(dir, `${name}.calls.jsonl`), "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as FakeEngineCall);
}
