/**
 * bench/logs, through the real daemon: `kitt-agent start --config agent.yaml`
 * in its own process, as operators start it, against the fake KITT server
 * (10 ms added to every request). Each round queues a run_test on the
 * server, the daemon's heartbeat picks it up, and the benchmark (a host CLI
 * printing BENCH_LINES lines with `seq`, then exiting) runs as the job. The
 * reference is the same benchmark run alone, in the same round, its stdout
 * read by a plain pipe reader (and, beside it, sent to a file). The benchmark times itself, so its figure is
 * its own run time: it grows only when its writes are held back.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { chmod, mkdir, open, readdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { defaultConfig, writeAgentConfig } from "@kitt/protocol";
import { startFakeKittServer, writeFakeModel, type FakeKittServer } from "@kitt/testkit";

const NAME = "bench-logs";
const TOKEN = "bench-token-0123456789";
const HEARTBEAT_S = 10; // the shortest the agent accepts
const cliBin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "apps", "cli", "bin", "run.js");

export interface DaemonBenchOptions {
  dir: string;
  lines: number;
  delayMs: number;
  rounds: number;
  /** Write the daemon's CPU profile (node --cpu-prof) into this directory. */
  cpuProfDir?: string;
  print: (text: string) => void;
}

export interface DaemonRound {
  aloneUs: number;
  /** Alone, with its stdout and stderr sent to a file (as the agent now takes them). */
  aloneFileUs: number;
  underUs: number;
  /** From the heartbeat that dispatched the job to the server holding every line. */
  deliveredMs: number;
  requests: number;
  inOrder: boolean;
  /** The daemon's CPU time (user + system) from queueing the job to the server holding every line. */
  agentCpuMs: number;
}

/** User + system CPU time of a process, from /proc (Linux; USER_HZ 100). */
async function cpuMs(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The benchmark: `kitt run ... -o OUT` arguments accepted; prints `line 1` ... `line N`, then its own run time. */
async function writeSeqBenchmark(dir: string, lines: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, "kitt");
  await writeFile(
    path,
    `#!/bin/sh
out=
while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out=$2; shift; done
start=$(date +%s%N)
seq -f "line %g" 1 ${lines}
end=$(date +%s%N)
echo "child_us $(( (end - start) / 1000 ))"
if [ -n "$out" ]; then echo '{"ok":1}' > "$out/metrics.json"; fi
`,
  );
  await chmod(path, 0o755);
  return path;
}

function childUs(text: string): number {
  return Number(/child_us (\d+)/.exec(text)?.[1]);
}

/** The benchmark alone: its stdout read (and dropped) by a plain pipe reader. */
async function runAlone(script: string, outDir: string): Promise<number> {
  await mkdir(outDir, { recursive: true });
  const child = spawn(script, ["run", "-o", outDir], { stdio: ["ignore", "pipe", "inherit"] });
  let tail = "";
  child.stdout.on("data", (chunk: Buffer) => {
    tail = (tail + chunk.toString("latin1")).slice(-200);
  });
  const [code] = (await once(child, "close")) as [number | null];
  if (code !== 0) throw new Error(`the benchmark alone exited with ${code}`);
  return childUs(tail);
}

/** The benchmark alone, its stdout and stderr going to a file. */
async function runAloneToFile(script: string, outDir: string): Promise<number> {
  await mkdir(outDir, { recursive: true });
  const file = await open(`${outDir}.output`, "a");
  try {
    const child = spawn(script, ["run", "-o", outDir], { stdio: ["ignore", file.fd, file.fd] });
    const [code] = (await once(child, "close")) as [number | null];
    if (code !== 0) throw new Error(`the benchmark alone exited with ${code}`);
  } finally {
    await file.close();
  }
  return childUs(await readFile(`${outDir}.output`, "utf8"));
}

async function freePort(): Promise<number> {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function startDaemon(dir: string, server: FakeKittServer, script: string, cpuProfDir: string | undefined): Promise<ChildProcess> {
  const share = join(dir, "share");
  await writeFakeModel(join(share, "m"));
  const config = {
    ...defaultConfig({ homedir: join(dir, "home"), hostname: NAME }),
    server_url: server.url,
    token: TOKEN,
    name: NAME,
    host: "127.0.0.1",
    port: await freePort(),
    heartbeat_interval_s: HEARTBEAT_S,
    model_storage_dir: join(dir, "models"),
    model_share_mount: share,
    model_share_source: "nas:/volume1/models",
    benchmark_command: script,
    execution: "host" as const,
    state_dir: join(dir, "state"),
    log_level: "warn" as const,
  };
  await mkdir(config.state_dir, { recursive: true, mode: 0o700 });
  server.setSettings(NAME, {
    model_storage_dir: config.model_storage_dir,
    model_share_mount: share,
    model_share_source: config.model_share_source,
    heartbeat_interval_s: String(HEARTBEAT_S),
  });
  const configPath = join(dir, "agent.yaml");
  await writeAgentConfig(configPath, config);
  const nodeArgs = cpuProfDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`];
  const agent = spawn(process.execPath, [...nodeArgs, cliBin, "start", "--config", configPath, "--log-format", "json"], {
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  agent.stderr?.setEncoding("utf8");
  await new Promise<void>((resolve, reject) => {
    agent.stderr?.on("data", (c: string) => {
      stderr = (stderr + c).slice(-64 * 1024);
      if (/running; local API on/.test(stderr)) resolve();
    });
    agent.once("exit", (code) => reject(new Error(`the daemon exited early with code ${code}: ${stderr}`)));
  });
  return agent;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

/** Rounds of (benchmark alone, benchmark as a heartbeat-dispatched job); returns false when a line was lost or out of order. */
export async function benchDaemon(opts: DaemonBenchOptions): Promise<boolean> {
  const { dir, lines, print } = opts;
  const script = await writeSeqBenchmark(join(dir, "bin"), lines);
  const server = await startFakeKittServer({ agents: [{ name: NAME, token: TOKEN }] });
  let agent: ChildProcess | undefined;
  const rounds: DaemonRound[] = [];
  try {
    server.delayAll(opts.delayMs);
    agent = await startDaemon(dir, server, script, opts.cpuProfDir);
    for (let r = 0; r < opts.rounds; r++) {
      const aloneUs = await runAlone(script, join(dir, `alone-${r}`));
      const aloneFileUs = await runAloneToFile(script, join(dir, `alone-file-${r}`));
      const before = server.requests.length;
      const cpuBefore = await cpuMs(agent.pid);
      const test = server.queueTest({ agent_name: NAME, model_path: join(dir, "share", "m"), engine_name: "vllm", suite_name: "quick" });
      const all = () => server.logLines(test.id).flatMap((row) => row.split("\n"));
      const count = () => all().filter((l) => l.startsWith("line ")).length;
      await server.waitFor(() => count() >= lines, HEARTBEAT_S * 1000 * 3 + 120_000);
      const deliveredAt = Date.now();
      const agentCpuMs = (await cpuMs(agent.pid)) - cpuBefore;
      const dispatch = server.heartbeats.find((b) => b.commands.some((c) => c.test_id === test.id));
      const deliveredMs = deliveredAt - (dispatch?.at ?? Number.NaN);
      await server.waitFor(() => server.statuses(test.id).some((s) => s === "completed" || s === "failed"), 120_000);
      const got = all();
      const benchLines = got.filter((l) => l.startsWith("line "));
      const inOrder = benchLines.length === lines && benchLines.every((l, i) => l === `line ${i + 1}`);
      const status = server.statuses(test.id).at(-1);
      if (status !== "completed") throw new Error(`round ${r + 1}: the job ended ${status}`);
      const requests = server.requests.slice(before).filter((q) => q.path.endsWith("/logs")).length;
      rounds.push({ aloneUs, aloneFileUs, underUs: childUs(got.join("\n")), deliveredMs, requests, inOrder, agentCpuMs });
    }
  } finally {
    if (agent !== undefined && agent.exitCode === null && agent.signalCode === null) {
      const exited = once(agent, "exit");
      agent.kill("SIGTERM");
      await exited;
    }
    await server.close();
  }
  const ms = (us: number) => `${(us / 1000).toFixed(1)} ms`;
  const v8 = process.env.KITT_AGENT_V8_FLAGS === undefined ? "the agent's default V8 flags" : `KITT_AGENT_V8_FLAGS=${process.env.KITT_AGENT_V8_FLAGS}`;
  print(`through the daemon (kitt-agent start, ${v8}, heartbeat-dispatched job, ${lines} lines, ${opts.delayMs} ms per server request):`);
  print(`round  alone       alone>file  under agent  ratio   server held all lines   agent CPU  log requests  order`);
  rounds.forEach((r, i) =>
    print(
      `${String(i + 1).padEnd(6)} ${ms(r.aloneUs).padEnd(11)} ${ms(r.aloneFileUs).padEnd(11)} ${ms(r.underUs).padEnd(12)} ${(r.underUs / r.aloneUs).toFixed(2).padEnd(7)} ${`${r.deliveredMs.toFixed(0)} ms after dispatch`.padEnd(23)} ${`${r.agentCpuMs.toFixed(0)} ms`.padEnd(10)} ${String(r.requests).padEnd(13)} ${r.inOrder ? "ok" : "BROKEN"}`,
    ),
  );
  const aloneMed = median(rounds.map((r) => r.aloneUs));
  const fileMed = median(rounds.map((r) => r.aloneFileUs));
  const underMed = median(rounds.map((r) => r.underUs));
  print(`median: alone ${ms(aloneMed)} (stdout to a file: ${ms(fileMed)}), under the daemon ${ms(underMed)}`);
  print(`ratio under the daemon / alone: ${(underMed / aloneMed).toFixed(2)} (/ alone to a file: ${(underMed / fileMed).toFixed(2)})`);
  if (opts.cpuProfDir !== undefined) print(`daemon CPU profile: ${(await readdir(opts.cpuProfDir)).map((f) => join(opts.cpuProfDir as string, f)).join(", ")}`);
  return rounds.every((r) => r.inOrder && Number.isFinite(r.underUs));
}
