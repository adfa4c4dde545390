import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../bin/run.js", import.meta.url));
const DIST_MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment of a CLI child: a temp HOME and no KITT_* leaking in from the developer's shell. */
export function cliEnv(home: string, extra: Record<string, string | undefined> = {}, binDirs: string[] = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KITT_") && !k.startsWith("FAKE_NVML")) env[k] = v;
  env.HOME = home;
  env.PATH = [...binDirs, process.env.PATH ?? ""].join(delimiter);
  // Point NVML at nothing unless a test brings a fake library.
  env.KITT_NVML_PATH = join(home, "no-libnvidia-ml.so.1");
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Runs the built kitt-agent as a child process and collects its output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, options: { cwd?: string; timeoutMs?: number; input?: string } = {}): Promise<CliRun> {
  if (!existsSync(DIST_MAIN)) throw new Error(`${DIST_MAIN} is missing: build @kitt/cli before its tests`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd: options.cwd ?? env.HOME, stdio: ["pipe", "pipe", "pipe"] });
    // Without input, stdin is at its end at once, as with </dev/null; a child that exits first is no error (EPIPE).
    child.stdin.on("error", () => {});
    child.stdin.end(options.input ?? "");
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 45_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * A fake executable (a sh script) in `dir` that appends "name arg1 arg2..." to
 * `log` and then runs `body` (sh).
 */
export async function fakeBin(dir: string, name: string, log: string, body = "exit 0"): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\nprintf '%s\\n' "${name} $*" >> '${log}'\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

export interface Background {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exit: Promise<number | null>;
}

/** Starts a long-running CLI command (`start`) and resolves once `ready` matches its stderr. */
export async function startCliBackground(args: string[], env: NodeJS.ProcessEnv, ready: RegExp, timeoutMs = 45_000): Promise<Background> {
  const child = spawn(process.execPath, [BIN, ...args], { env, cwd: env.HOME, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    child.stderr?.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
      if (ready.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ready: ${stderr}`));
    });
  });
  return { child, stderr: () => stderr, stdout: () => stdout, exit };
}

/** Awaits `p`; when it fails, the error carries the agent's last 40 lines of output: what it was doing when the wait gave up. */
export async function explainedBy<T>(agent: Background, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const tail = `${agent.stderr()}${agent.stdout()}`.trimEnd().split("\n").slice(-40).join("\n");
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- the agent's last output ---\n${tail}`, { cause: err });
  }
}

/** Re-checks `condition` every 50 ms until it holds or `timeoutMs` passes (for things with no event to wait on, such as a process exiting). */
export async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** True while `pid` exists (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/**
 * SIGKILLs `pid` with its whole process group (a benchmark leads its own):
 * what a test must do with a benchmark process when its agent is gone.
 */
function pgidOf(pid: number | "self"): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

export function killWithGroup(pid: number): void {
  try {
    const pgid = pgidOf(pid);
    // Only a group of its own: never the test runner's.
    if (Number.isInteger(pgid) && pgid > 1 && pgid !== pgidOf("self")) process.kill(-pgid, "SIGKILL");
  } catch {
    // already gone, or its group is
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Test hooks shared by the files that run a real daemon: children, stray pids and servers cleaned up after each test. */
export function backgroundCleanup(afterEachHook: (fn: () => Promise<void>) => void) {
  const state = { servers: [] as { close(): Promise<void> }[], children: [] as Background[], strays: [] as number[] };
  afterEachHook(async () => {
    for (const pid of state.strays.splice(0)) if (alive(pid)) killWithGroup(pid);
    for (const c of state.children.splice(0)) if (c.child.exitCode === null) c.child.kill("SIGKILL");
    for (const s of state.servers.splice(0)) await s.close();
  });
  return state;
}

/**
 * `kitt-agent ARGS` on a real pseudo-terminal: script(1) runs it in a
 * session of its own, as a person's terminal would; `output()` is what the
 * terminal showed (stdout and stderr together). Put `child.pid` and the
 * agent's pid into backgroundCleanup's `strays`.
 */
export function startOnTerminal(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string } {
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const child = spawn("script", ["-qfec", quoted, "/dev/null"], { env, cwd: env.HOME, stdio: ["pipe", "pipe", "pipe"], detached: true });
  let text = "";
  child.stdout?.setEncoding("utf8").on("data", (c: string) => (text += c));
  child.stderr?.setEncoding("utf8").on("data", (c: string) => (text += c));
  return { child, output: () => text };
}

/** The pid in `<home>/.kitt/agent.pid` once the agent wrote it. */
export async function agentPid(home: string, timeoutMs = 10_000): Promise<number> {
  const file = join(home, ".kitt", "agent.pid");
  await until(() => existsSync(file) && /^\d+\s*$/.test(readFileSync(file, "utf8")), timeoutMs, "the pid file");
  return Number(readFileSync(file, "utf8").trim());
}
