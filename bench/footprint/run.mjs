// bench/footprint: the daemon's memory and CPU while idle.
//
// Starts the real daemon (built @kitt/daemon) in a child process against the
// fake KITT server with a 10 s heartbeat, and beside it, for reference, a bare
// Node process that only keeps a timer. Both are sampled from /proc for the
// same window (default 60 s; --seconds N). Prints RSS (start, end, peak) and
// CPU seconds (user + system) of each, and the heartbeats the server got.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

import { defaultConfig } from "@kitt/protocol";
import { startFakeKittServer } from "@kitt/testkit";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "60" } } });
const seconds = Number(values.seconds);
if (!Number.isFinite(seconds) || seconds < 5) {
  console.error("bench/footprint: --seconds must be a number >= 5");
  process.exit(2);
}
const TICKS = 100; // USER_HZ on Linux
const daemonEntry = createRequire(import.meta.url).resolve("@kitt/daemon");

async function sample(pid) {
  const stat = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1].split(" ");
  const cpu = (Number(stat[11]) + Number(stat[12])) / TICKS; // utime + stime
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  return { cpu, rssMb: rssKb / 1024 };
}

const dir = await mkdtemp(join(tmpdir(), "kitt-bench-footprint-"));
const token = "bench-token-0123456789";
const server = await startFakeKittServer({ agents: [{ name: "bench-agent", token }] });
const children = [];
try {
  const config = {
    ...defaultConfig({ homedir: join(dir, "home"), hostname: "bench-agent" }),
    server_url: server.url,
    token,
    name: "bench-agent",
    host: "127.0.0.1",
    port: 0,
    heartbeat_interval_s: 10,
    model_storage_dir: join(dir, "models"),
    state_dir: join(dir, "state"),
    log_level: "warn",
  };
  server.setSettings("bench-agent", { model_storage_dir: config.model_storage_dir, heartbeat_interval_s: "10" });
  const configPath = join(dir, "config.json");
  await writeFile(configPath, JSON.stringify(config));
  const agentScript = `
    import { readFileSync } from "node:fs";
    import { startAgent } from ${JSON.stringify(daemonEntry)};
    const agent = await startAgent(JSON.parse(readFileSync(${JSON.stringify(configPath)}, "utf8")), { handleSignals: true });
    console.log("READY");
    await agent.done;
    process.exit(0);
  `;
  const agent = spawn(process.execPath, ["--input-type=module", "-e", agentScript], { cwd: dirname(daemonEntry), stdio: ["ignore", "pipe", "inherit"] });
  const reference = spawn(process.execPath, ["-e", "setInterval(() => {}, 10_000)"], { stdio: "ignore" });
  children.push(agent, reference);
  await new Promise((resolve, reject) => {
    agent.stdout.on("data", (c) => String(c).includes("READY") && resolve());
    agent.once("exit", (code) => reject(new Error(`daemon exited early with code ${code}`)));
  });
  await server.waitFor(() => server.heartbeats.length >= 1, 15_000);
  const beatsBefore = server.heartbeats.length;
  const a0 = await sample(agent.pid);
  const r0 = await sample(reference.pid);
  let aPeak = a0.rssMb;
  let rPeak = r0.rssMb;
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 1000));
    aPeak = Math.max(aPeak, (await sample(agent.pid)).rssMb);
    rPeak = Math.max(rPeak, (await sample(reference.pid)).rssMb);
  }
  const a1 = await sample(agent.pid);
  const r1 = await sample(reference.pid);
  const beats = server.heartbeats.length - beatsBefore;
  const row = (name, s0, s1, peak) =>
    `${name.padEnd(22)} RSS ${s0.rssMb.toFixed(1).padStart(6)} -> ${s1.rssMb.toFixed(1).padStart(6)} MiB (peak ${peak.toFixed(1)})   CPU ${(s1.cpu - s0.cpu).toFixed(2)} s`;
  console.log(`idle window: ${seconds} s, heartbeat interval 10 s, ${beats} heartbeats received by the server`);
  console.log(row("kitt-agent daemon", a0, a1, aPeak));
  console.log(row("bare node (reference)", r0, r1, rPeak));
  console.log(`daemon / reference: RSS x${(a1.rssMb / r1.rssMb).toFixed(2)}, CPU +${(a1.cpu - a0.cpu - (r1.cpu - r0.cpu)).toFixed(2)} s over ${seconds} s`);
  agent.kill("SIGTERM");
  await new Promise((r) => agent.once("exit", r));
} finally {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
