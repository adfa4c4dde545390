/**
 * The Docker engine as tests see it, through the `docker` CLI: does one
 * answer, should a Docker suite run, run a command, sweep test containers.
 * Every call has a timeout and honours DOCKER_HOST from the env passed in.
 */
import { spawn } from "node:child_process";

export interface DockerRunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunDockerOptions {
  env?: NodeJS.ProcessEnv;
  /** Default 60 s; the command is SIGKILLed after it. */
  timeoutMs?: number;
}

/**
 * Runs `docker <args>` and resolves with its exit code and output, whatever
 * the code. Rejects (naming the command) only when docker cannot be started
 * or runs past the timeout.
 */
export function runDocker(args: string[], options: RunDockerOptions = {}): Promise<DockerRunResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const what = `docker ${args.join(" ")}`;
  return new Promise((resolve, reject) => {
    const child = spawn("docker", args, { env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`${what}: ${error.message}`, { cause: error }));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`${what}: no answer within ${timeoutMs / 1000} s`));
        return;
      }
      resolve({
        code: code ?? (signal === null ? 1 : 128),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
  });
}

/** Like runDocker, but a non-zero exit is an error naming the command and its stderr. */
export async function dockerOk(args: string[], options: RunDockerOptions = {}): Promise<string> {
  const result = await runDocker(args, options);
  if (result.code !== 0) {
    const detail = result.stderr.trim() || result.stdout.trim() || "no output";
    throw new Error(`docker ${args.join(" ")} exited with ${result.code}: ${detail}`);
  }
  return result.stdout;
}

export interface DockerAvailability {
  available: boolean;
  /** Why not, when not available. */
  reason?: string;
  /** The engine's version, when available. */
  version?: string;
}

/** Whether a Docker engine answers `docker version` within 10 s. */
export async function dockerAvailable(env: NodeJS.ProcessEnv = process.env): Promise<DockerAvailability> {
  let result: DockerRunResult;
  try {
    result = await runDocker(["version", "--format", "{{.Server.Version}}"], { env, timeoutMs: 10_000 });
  } catch (error) {
    const cause = (error as Error).cause as NodeJS.ErrnoException | undefined;
    if (cause?.code === "ENOENT") return { available: false, reason: "no docker CLI on PATH" };
    return { available: false, reason: (error as Error).message };
  }
  const version = result.stdout.trim();
  if (result.code === 0 && version !== "") return { available: true, version };
  const lines = result.stderr.trim().split("\n");
  return { available: false, reason: lines[lines.length - 1] || `docker version exited with ${result.code}` };
}

export interface DockerSuiteOptions {
  env?: NodeJS.ProcessEnv;
  /** Where the one skip line goes (default stderr). */
  warn?: (line: string) => void;
}

let defaultSuite: Promise<boolean> | undefined;

/**
 * For test files: `describe.skipIf(!(await dockerSuite()))(...)`. True when
 * an engine answers. When none does, throws under CI=true (CI must run the
 * Docker suites) and otherwise prints one line and returns false. Asked once
 * per process when called without options.
 */
export function dockerSuite(options?: DockerSuiteOptions): Promise<boolean> {
  if (options === undefined) {
    defaultSuite ??= decideDockerSuite({});
    return defaultSuite;
  }
  return decideDockerSuite(options);
}

async function decideDockerSuite(options: DockerSuiteOptions): Promise<boolean> {
  const env = options.env ?? process.env;
  const engine = await dockerAvailable(env);
  if (engine.available) return true;
  if (env.CI === "true") {
    throw new Error(`docker: no Docker engine answers (${engine.reason}), and CI=true requires the Docker suite to run`);
  }
  const warn = options.warn ?? ((line: string) => process.stderr.write(`${line}\n`));
  warn(`docker: no Docker engine answers (${engine.reason}): skipping the Docker suite`);
  return false;
}

/**
 * Every container a test starts should carry this label, so that CI
 * (`.ci/run`) can sweep what a crashed test left behind. For a test file's
 * own afterAll, add a label unique to that file and sweep by it, so that
 * files running at the same time do not remove each other's containers.
 */
export const TEST_CONTAINER_LABELS: Readonly<Record<string, string>> = Object.freeze({ "kitt.test": "1" });

/** Force-removes every container (running or not) carrying all of these labels; returns their ids. */
export async function removeTestContainers(
  labels: Record<string, string>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string[]> {
  const entries = Object.entries(labels);
  if (entries.length === 0) throw new Error("removeTestContainers: refusing to remove containers without a label filter");
  const filters = entries.flatMap(([key, value]) => ["--filter", `label=${key}=${value}`]);
  const stdout = await dockerOk(["ps", "-aq", "--no-trunc", ...filters], { env, timeoutMs: 30_000 });
  const ids = stdout.split("\n").filter((id) => id !== "");
  if (ids.length === 0) return ids;
  const removed = await runDocker(["rm", "-f", ...ids], { env, timeoutMs: 60_000 });
  // A container started with --rm may be going away by itself meanwhile.
  const gone = /No such container|already in progress/;
  const problems = removed.stderr.split("\n").filter((line) => line.trim() !== "" && !gone.test(line));
  if (removed.code !== 0 && problems.length > 0) {
    throw new Error(`docker rm -f ${ids.join(" ")} exited with ${removed.code}: ${problems.join("; ")}`);
  }
  return ids;
}
