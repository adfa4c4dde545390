/**
 * bench/docker: the same fake `kitt` (the KITT test image's script) run as a
 * job twice, in the same run: once on the host (HostExecutor), once in the
 * KITT test image on the real Docker engine (ContainerExecutor), each
 * through JobRunner + ServerReporter to the fake KITT server, exactly as the
 * daemon wires them. Prints, for both, the time from dispatch to the
 * benchmark's first line, the job's wall time, the per-line cost, and the
 * ratio container/host; checks count and order of every line. As a
 * reference for the container's own cost, the same image run by the docker
 * CLI (`docker run --rm`, attached, output read by this process) when the
 * CLI is installed.
 *
 *   ./dev bench:docker
 *   BENCH_LINES=20000 BENCH_ROUNDS=5 ./dev bench:docker
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { DockerRuntime } from "@kitt/containers";
import { KittServerClient, type ServerCommand } from "@kitt/protocol";
import { executionPlanner, JobRunner, ServerReporter, type ModelResolver } from "@kitt/runner";
import { buildKittTestImage, dockerAvailable, KITT_TEST_IMAGE_SCRIPT, startFakeKittServer, writeFakeKittBehaviour } from "@kitt/testkit";

const LINES = Number(process.env.BENCH_LINES ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 10);

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

const availability = await dockerAvailable();
if (!availability.available) {
  print(`bench/docker: no Docker engine answers (${availability.reason ?? "unknown"}); nothing measured`);
  process.exit(1);
}

const dir = await mkdtemp(join(tmpdir(), "kitt-bench-docker-"));
const image = await buildKittTestImage();
const model = join(dir, "model");
await mkdir(model, { recursive: true });
await writeFakeKittBehaviour(model, { lines: LINES });
// The host run: the very script of the image, under the same static busybox shell.
const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p)) ?? "/bin/busybox";
const hostKitt = join(dir, "bin", "kitt");
await mkdir(join(dir, "bin"), { recursive: true });
await writeFile(hostKitt, KITT_TEST_IMAGE_SCRIPT.replace(/^#!\/bin\/sh/, `#!${busybox} sh`));
await chmod(hostKitt, 0o755);

const server = await startFakeKittServer();
const agent = server.provisionAgent("bench-docker", "bench-token-0123456789");
server.delayAll(DELAY_MS);
const client = new KittServerClient({ serverUrl: server.url, token: "bench-token-0123456789" });
const reporter = await ServerReporter.open({ stateDir: join(dir, "state"), transport: client, agentId: () => agent.id });
const resolver: ModelResolver = {
  resolve: async (modelPath) => ({ localPath: modelPath, staged: false, release: () => {} }),
  evict: async () => {},
  cleanupAll: async () => {},
};
const runtime = new DockerRuntime();
const env = { ...process.env, PATH: `${join(dir, "bin")}:${process.env.PATH ?? ""}` };

interface Run {
  firstLineMs: number;
  wallMs: number;
  deliveredMs: number;
  ok: boolean;
}

async function once(mode: "host" | "docker", round: number): Promise<Run> {
  // The first line is timed where the job hands it on (a log subscriber could fall behind a flood and skip it).
  let firstLineAt = NaN;
  const watched = new Proxy(reporter, {
    get(target, key) {
      if (key === "log") {
        return (testId: string, line: string, commandId?: string) => {
          if (Number.isNaN(firstLineAt) && line.startsWith("kitt (fake, container) run:")) firstLineAt = performance.now();
          return target.log(testId, line, commandId);
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const runner = new JobRunner({
    resolver,
    reporter: watched,
    workDir: join(dir, "work"),
    planExecution: executionPlanner({ mode: () => mode, kittImage: () => image, benchmarkCommand: "kitt", env, runtime, agentLabel: "bench-docker" }),
    env,
  });
  const testId = server.queueTest({ agent_name: "bench-docker", model_path: model, engine_name: "vllm", suite_name: "quick" }).id;
  const command: ServerCommand = {
    kind: "run_test",
    command_id: `bench-${mode}-${round}`,
    test_id: testId,
    type: "run_test",
    payload: { model_path: model, engine_name: "vllm", suite_name: "quick" },
  };
  const started = performance.now();
  const submitted = runner.submit(command);
  if (!submitted.accepted) throw new Error(submitted.error);
  const job = runner.job(command.command_id);
  await runner.whenIdle();
  const wallMs = performance.now() - started;
  const firstLineMs = firstLineAt - started;
  const all = () => server.logLines(testId).flatMap((row) => row.split("\n"));
  await server.waitFor(() => all().filter((l) => l.startsWith("[")).length >= LINES, 300_000);
  const deliveredMs = performance.now() - started;
  const steps = all().filter((l) => / benchmark step /.test(l));
  const ok = steps.length === LINES && steps.every((l, i) => l === `[${i + 1}/${LINES}] benchmark step ${i + 1}`) && job?.outcome?.status === "completed";
  return { firstLineMs, wallMs, deliveredMs, ok };
}

const dockerCli = spawnSync("docker", ["version", "--format", "{{.Client.Version}}"], { encoding: "utf8" }).status === 0;

/** The reference: the same container through `docker run`, its output counted here, no agent and no server. */
async function viaDockerCli(round: number): Promise<Run> {
  const out = join(dir, `cli-out-${round}`);
  const args = ["run", "--rm", "--label", "kitt.test=1", "--network", "host", "-v", `${model}:${model}:ro`, "-v", `${dir}:${dir}`, image];
  const started = performance.now();
  let firstLineMs = NaN;
  let steps = 0;
  let pending = "";
  const child = spawn("docker", [...args, "run", "-m", model, "-e", "vllm", "-s", "quick", "-o", out, "--mode", "docker"], { stdio: ["ignore", "pipe", "inherit"] });
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (text: string) => {
    const parts = (pending + text).split("\n");
    pending = parts.pop() ?? "";
    for (const line of parts) {
      if (Number.isNaN(firstLineMs) && line.startsWith("kitt (fake, container) run:")) firstLineMs = performance.now() - started;
      if (line === `[${steps + 1}/${LINES}] benchmark step ${steps + 1}`) steps++;
    }
  });
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  const wallMs = performance.now() - started;
  return { firstLineMs, wallMs, deliveredMs: NaN, ok: code === 0 && steps === LINES };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
type Mode = "host" | "docker" | "cli";
const runs: Record<Mode, Run[]> = { host: [], docker: [], cli: [] };
// Alternate, so that a change in machine load hits all alike.
for (let r = 0; r < ROUNDS; r++) {
  for (const mode of ["host", "docker"] as const) runs[mode].push(await once(mode, r));
  if (dockerCli) runs.cli.push(await viaDockerCli(r));
}
const LABELS: Record<Mode, string> = { host: "agent, host CLI", docker: "agent, KITT image", cli: "reference: `docker run --rm`, no agent" };

const engine = await runtime.info();
print(`bench/docker: ${LINES} lines per run, ${ROUNDS} rounds (host and container alternating), fake server +${DELAY_MS} ms per request`);
print(`engine: Docker ${engine.serverVersion} (${engine.architecture}); image ${image}`);
print("");
print("| | dispatch -> first line | job wall time | per line | server held every line |");
print("| --- | --- | --- | --- | --- |");
for (const mode of ["host", "docker", "cli"] as const) {
  if (runs[mode].length === 0) continue;
  const first = median(runs[mode].map((r) => r.firstLineMs));
  const wall = median(runs[mode].map((r) => r.wallMs));
  const delivered = median(runs[mode].map((r) => r.deliveredMs));
  const held = Number.isNaN(delivered) ? "-" : `${delivered.toFixed(0)} ms`;
  print(`| ${LABELS[mode]} | ${first.toFixed(0)} ms | ${wall.toFixed(0)} ms | ${(((wall - first) * 1000) / LINES).toFixed(2)} µs | ${held} |`);
}
const perLine = (mode: Mode) => {
  const first = median(runs[mode].map((r) => r.firstLineMs));
  return (median(runs[mode].map((r) => r.wallMs)) - first) / LINES;
};
print("");
print(`container / host: first line ${(median(runs.docker.map((r) => r.firstLineMs)) / median(runs.host.map((r) => r.firstLineMs))).toFixed(1)}x, per line ${(perLine("docker") / perLine("host")).toFixed(2)}x, wall ${(median(runs.docker.map((r) => r.wallMs)) / median(runs.host.map((r) => r.wallMs))).toFixed(2)}x`);
if (runs.cli.length > 0) {
  print(`agent container / docker run: first line ${(median(runs.docker.map((r) => r.firstLineMs)) / median(runs.cli.map((r) => r.firstLineMs))).toFixed(2)}x, per line ${(perLine("docker") / perLine("cli")).toFixed(2)}x, wall ${(median(runs.docker.map((r) => r.wallMs)) / median(runs.cli.map((r) => r.wallMs))).toFixed(2)}x`);
} else {
  print("no docker CLI on PATH: the `docker run` reference was not measured");
}
const allOk = [...runs.host, ...runs.docker, ...runs.cli].every((r) => r.ok);
print(`count and order of every line, every run: ${allOk ? "ok" : "WRONG"}`);

await reporter.stop();
client.close();
await server.close();
await rm(dir, { recursive: true, force: true });
if (!allOk) process.exitCode = 1;
