/**
 * bench/logs: a benchmark printing 100,000 lines as fast as it can, with
 * the fake KITT server adding 10 ms to every request.
 *
 * 1. Through the real daemon (daemon.ts): `kitt-agent start`, the job
 *    dispatched by the heartbeat, BENCH_ROUNDS rounds (default 3) of the
 *    benchmark alone and as a job; medians and their ratio.
 * 2. The job path only (JobRunner and ServerReporter in this process, as
 *    the daemon wires them, without the daemon around them).
 *
 * Both check that every line reached the server, in order.
 *
 *   ./dev bench:logs
 *   BENCH_ROUNDS=5 BENCH_CPU_PROF=/tmp/prof ./dev bench:logs
 */
import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { KittServerClient, type ServerCommand } from "@kitt/protocol";
import { startFakeKittServer } from "@kitt/testkit";

import { JobRunner, ServerReporter, type ModelResolver } from "@kitt/runner";

import { benchDaemon } from "./daemon.ts";
import { benchReaders } from "./readers.ts";

const LINES = Number(process.env.BENCH_LINES ?? 100_000);
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 10);
const READERS = Number(process.env.BENCH_READERS ?? 0);
const READER_LINES = Number(process.env.BENCH_READER_LINES ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CPU_PROF = process.env.BENCH_CPU_PROF;
if (!Number.isInteger(LINES) || LINES < 1 || !Number.isInteger(ROUNDS) || ROUNDS < 1 || !(DELAY_MS >= 0)) {
  process.stderr.write("bench/logs: BENCH_LINES and BENCH_ROUNDS must be positive integers, BENCH_DELAY_MS a number >= 0\n");
  process.exit(2);
}

// Not console: the workspace's lint override covers the root bench/ only.
function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

const dir = await mkdtemp(join(tmpdir(), "kitt-bench-logs-"));
if (CPU_PROF !== undefined) await mkdir(CPU_PROF, { recursive: true });
const daemonOk = await benchDaemon({ dir: join(dir, "daemon"), lines: LINES, delayMs: DELAY_MS, rounds: ROUNDS, cpuProfDir: CPU_PROF, print });
print("");
const script = join(dir, "flood");
// The child measures itself: if its stdout were blocked, its own run time would grow.
await writeFile(
  script,
  `#!/bin/sh
start=$(date +%s%N)
seq -f "line %g" 1 ${LINES}
end=$(date +%s%N)
echo "child_ms $(( (end - start) / 1000000 ))"
`,
);
await chmod(script, 0o755);


function childMs(lines: string[]): number {
  const last = lines.find((l) => l.startsWith("child_ms "));
  return Number(last?.split(" ")[1]);
}

// 1. Alone: stdout read by a plain pipe reader.
const alone = await new Promise<string[]>((resolve, reject) => {
  const child = spawn(script, [], { stdio: ["ignore", "pipe", "inherit"] });
  let tail = "";
  child.stdout.on("data", (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-200);
  });
  child.on("error", reject);
  child.on("close", () => resolve(tail.split("\n")));
});
const aloneMs = childMs(alone);

// 2. Under the runner, shipping to the fake server.
const server = await startFakeKittServer();
const agent = server.provisionAgent("bench", "bench-token-0123456789");
server.delayAll(DELAY_MS);
const client = new KittServerClient({ serverUrl: server.url, token: "bench-token-0123456789" });
const testId = server.queueTest({ agent_name: "bench", model_path: "/models/x", engine_name: "vllm", suite_name: "quick" }).id;
const reporter = await ServerReporter.open({ stateDir: join(dir, "state"), transport: client, agentId: () => agent.id });
const resolver: ModelResolver = {
  resolve: async (modelPath) => ({ localPath: modelPath, staged: false, release: () => {} }),
  evict: async () => {},
  cleanupAll: async () => {},
};
const runner = new JobRunner({ resolver, reporter, workDir: join(dir, "work"), benchmarkCommand: script });
const command: ServerCommand = {
  kind: "run_test",
  command_id: "bench1",
  test_id: testId,
  type: "run_test",
  payload: { model_path: "/models/x", engine_name: "vllm", suite_name: "quick" },
};
const started = performance.now();
runner.submit(command);
await runner.whenIdle();
const jobDoneMs = performance.now() - started;
const all = () => server.logLines(testId).flatMap((row) => row.split("\n"));
await server.waitFor(() => all().filter((l) => l.startsWith("line ")).length >= LINES, 120_000);
const deliveredMs = performance.now() - started;
await server.waitFor(() => server.statuses(testId).includes("completed"), 120_000);
const lines = all();
const benchLines = lines.filter((l) => l.startsWith("line "));
const inOrder = benchLines.every((l, i) => l === `line ${i + 1}`);
const underMs = childMs(lines);
const requests = server.requests.filter((r) => r.path.endsWith("/logs")).length;

print(`job path only (JobRunner + ServerReporter in this process, no daemon), ${LINES} lines, ${DELAY_MS} ms per server request:`);
print(`child run time alone:        ${aloneMs} ms`);
print(`child run time under agent:  ${underMs} ms (ratio ${(underMs / Math.max(1, aloneMs)).toFixed(2)})`);
print(`job finished after:          ${jobDoneMs.toFixed(0)} ms`);
print(`server held every line after ${deliveredMs.toFixed(0)} ms, in ${requests} log requests`);
print(`count ${benchLines.length}/${LINES}, in order: ${inOrder}, total rows ${server.logLines(testId).length}`);

await reporter.stop();
client.close();
await server.close();
// 3. With BENCH_READERS: a job through a spawned daemon, with 1 SSE reader and with 1 + BENCH_READERS.
if (READERS > 0) await benchReaders(join(dir, "readers"), READER_LINES, READERS);
await rm(dir, { recursive: true, force: true });
if (!daemonOk || benchLines.length !== LINES || !inOrder) process.exitCode = 1;
