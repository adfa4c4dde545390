// bench/queue: how fast the agent drains the server's queue.
//
// The KITT server hands out at most one command per heartbeat. Ten quick
// tests whose benchmark takes 1 s are queued at once on the fake KITT server
// (heartbeat interval 30 s); the real daemon (built @kitt/daemon) runs in a
// child process and drains them. Prints the wall time from the first dispatch
// to the last completion, the time between two dispatches (one run plus the
// agent's time to ask for the next command),
// and the heartbeats the server got; beside it, as the reference measured in
// the same run, the benchmark run ten times on its own, one after the other.
//
//   ./dev bench:queue
//   BENCH_TESTS=20 BENCH_SLEEP_S=2 ./dev bench:queue
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";

import { defaultConfig } from "@kitt/protocol";
import { startFakeKittServer, writeFakeBenchmark, writeFakeModel } from "@kitt/testkit";

const TESTS = Number(process.env.BENCH_TESTS ?? 10);
const SLEEP_S = Number(process.env.BENCH_SLEEP_S ?? 1);
const INTERVAL_S = 30;
if (!Number.isInteger(TESTS) || TESTS < 1 || TESTS > 200 || !(SLEEP_S >= 0 && SLEEP_S <= 60)) {
  console.error("bench/queue: BENCH_TESTS must be an integer 1..200 and BENCH_SLEEP_S a number 0..60");
  process.exit(2);
}
const daemonEntry = createRequire(import.meta.url).resolve("@kitt/daemon");
const NAME = "bench-queue";
const TOKEN = "bench-token-0123456789";
const MODEL = "/data/models/hf/Qwen/Qwen2.5-0.5B-Instruct";

const dir = await mkdtemp(join(tmpdir(), "kitt-bench-queue-"));
const server = await startFakeKittServer({ agents: [{ name: NAME, token: TOKEN }] });
let agent;
try {
  await writeFakeModel(join(dir, "share", "hf", "Qwen", "Qwen2.5-0.5B-Instruct"));
  const benchmark = await writeFakeBenchmark(join(dir, "bin"), { sleepSeconds: SLEEP_S, lines: 2 });
  await mkdir(join(dir, "state"), { recursive: true, mode: 0o700 });

  // The reference: the benchmark alone, TESTS times in a row, as the agent would start it.
  const aloneMs = [];
  for (let i = 0; i < TESTS; i++) {
    const out = join(dir, `alone-${i}`);
    const t0 = performance.now();
    const code = await new Promise((resolve, reject) => {
      const child = spawn(benchmark, ["run", "-m", MODEL, "-e", "vllm", "-s", "quick", "-o", out], { stdio: "ignore" });
      child.once("error", reject);
      child.once("close", resolve);
    });
    if (code !== 0) throw new Error(`the benchmark alone exited with ${code}`);
    aloneMs.push(performance.now() - t0);
  }
  const aloneTotal = aloneMs.reduce((a, b) => a + b, 0);

  const config = {
    ...defaultConfig({ homedir: join(dir, "home"), hostname: NAME }),
    server_url: server.url,
    token: TOKEN,
    name: NAME,
    host: "127.0.0.1",
    port: 0,
    heartbeat_interval_s: INTERVAL_S,
    model_storage_dir: join(dir, "models"),
    model_share_mount: join(dir, "share"),
    model_share_source: "nas:/volume1/models",
    benchmark_command: benchmark,
    execution: "host",
    state_dir: join(dir, "state"),
    log_level: "warn",
  };
  server.setSettings(NAME, {
    model_storage_dir: config.model_storage_dir,
    model_share_mount: config.model_share_mount,
    model_share_source: config.model_share_source,
    heartbeat_interval_s: String(INTERVAL_S),
  });
  const rows = Array.from({ length: TESTS }, () => server.queueTest({ agent_name: NAME, model_path: MODEL, engine_name: "vllm", suite_name: "quick" }));
  const ended = new Map(); // test id -> ms when the server got its terminal status
  const isEnded = (r) => server.statuses(r.id).some((s) => s === "completed" || s === "failed");

  const configPath = join(dir, "config.json");
  await writeFile(configPath, JSON.stringify(config));
  const agentScript = `
    import { readFileSync } from "node:fs";
    import { startAgent } from ${JSON.stringify(daemonEntry)};
    const agent = await startAgent(JSON.parse(readFileSync(${JSON.stringify(configPath)}, "utf8")), { handleSignals: true });
    await agent.done;
    process.exit(0);
  `;
  agent = spawn(process.execPath, ["--input-type=module", "-e", agentScript], { cwd: dirname(daemonEntry), stdio: ["ignore", "ignore", "inherit"] });
  const exited = new Promise((resolve) => agent.once("exit", resolve));
  const deadline = Date.now() + TESTS * (SLEEP_S + 1) * 1000 + INTERVAL_S * 1000 * 3;
  await server.waitFor(() => {
    for (const r of rows) if (!ended.has(r.id) && isEnded(r)) ended.set(r.id, Date.now());
    return ended.size === rows.length;
  }, Math.max(1, deadline - Date.now()));
  const beats = server.heartbeats;
  const dispatches = beats.filter((b) => b.commands.length > 0);
  const first = dispatches[0].at;
  const last = Math.max(...ended.values());
  const failed = rows.filter((r) => !server.statuses(r.id).includes("completed")).length;
  // Between two dispatches: one job's run plus the agent's time to ask for the next.
  const gaps = [];
  for (let i = 1; i < dispatches.length; i++) gaps.push(dispatches[i].at - dispatches[i - 1].at);
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

  const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`bench/queue: ${TESTS} quick tests queued at once, benchmark sleeps ${SLEEP_S} s, heartbeat interval ${INTERVAL_S} s (60 s floor while a job runs)`);
  console.log(`first dispatch -> last completion      ${s(last - first).padStart(10)}   (${TESTS - failed}/${TESTS} completed)`);
  console.log(`reference: the benchmark alone x${TESTS}      ${s(aloneTotal).padStart(10)}   (median run ${s(median(aloneMs))})`);
  console.log(`agent / reference                      ${`x${((last - first) / aloneTotal).toFixed(2)}`.padStart(10)}`);
  console.log(`dispatch -> next dispatch              ${`median ${Math.round(median(gaps))} ms, max ${Math.round(Math.max(...gaps))} ms`}   (a run alone: median ${Math.round(median(aloneMs))} ms)`);
  console.log(`heartbeats the server got              ${beats.length} (${dispatches.length} handed out a command)`);
  console.log(`without an idle heartbeat the wait after each job is >= 60 s: at least ${s((TESTS - 1) * 60_000 + aloneTotal)}`);
  agent.kill("SIGTERM");
  await exited;
  if (failed > 0) process.exitCode = 1;
} finally {
  if (agent !== undefined && agent.exitCode === null && agent.signalCode === null) agent.kill("SIGKILL");
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
