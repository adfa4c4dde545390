/**
 * bench/logs: a benchmark child printing 100,000 lines as fast as it can,
 * run alone and then as a job through the agent's job path (JobRunner and
 * ServerReporter, exactly as the daemon wires them, without the HTTP API in
 * front) with the fake KITT server adding 10 ms to every request. Prints the child's own run time in both
 * cases (and their ratio), the time until the server holds every line, the
 * number of log requests, and checks order and count.
 *
 *   ./dev bench:logs
 */
import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { KittServerClient, type ServerCommand } from "@kitt/protocol";
import { startFakeKittServer } from "@kitt/testkit";

import { JobRunner, ServerReporter, type ModelResolver } from "@kitt/runner";

import { benchReaders } from "./readers.ts";

const LINES = Number(process.env.BENCH_LINES ?? 100_000);
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 10);
const READERS = Number(process.env.BENCH_READERS ?? 0);
const READER_LINES = Number(process.env.BENCH_READER_LINES ?? 20_000);

const dir = await mkdtemp(join(tmpdir(), "kitt-bench-logs-"));
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

// Not console: the workspace's lint override covers the root bench/ only.
function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

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

print(`lines: ${LINES}, server delay per request: ${DELAY_MS} ms`);
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
if (benchLines.length !== LINES || !inOrder) process.exitCode = 1;
