// bench/footprint: the daemon's memory and CPU, idle and under a steady load.
//
// Idle (default): the agent started as operators start it (`kitt-agent start
// --config FILE`, the built CLI) against the fake KITT server with a 10 s
// heartbeat, and beside it, for reference, a bare Node process that only
// keeps a timer. Both are sampled from /proc over the same window (default
// 60 s; --seconds N). Prints RSS (start, end, peak) and CPU seconds of each.
//
// --soak: the daemon (built @kitt/daemon, in its own process) with a 1 s
// heartbeat (the agent's own floor is 10 s: the bench shortens its sleeps as
// the tests do) and a job queued every 10 s (a host benchmark printing 2,000
// lines), for --seconds (default 600). Prints RSS at start and end, the peak,
// and the slope of a least-squares line through one sample every 5 s after
// the first minute, in MiB per hour: a flat agent stays near 0. Then, with no
// more jobs, RSS 45 s after the last one (idle copy workers end after 30 s).
//
// Idle also runs a second daemon beside the first with KITT_AGENT_V8_FLAGS=none
// (V8's own defaults instead of the agent's memory-saving flags), so both
// figures come from the same window (--no-compare: only the first).
//
// --modules: also print the modules the daemon loaded, by package.
// --https: the fake server speaks https and asks for a client certificate
// (agent.yaml's tls: cert, key, ca), as a fleet with mTLS runs; the default is
// plain http.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { defaultConfig, writeAgentConfig } from "@kitt/protocol";
import { startFakeKittServer, writeFakeBenchmark, writeFakeModel, writeTestPki } from "@kitt/testkit";

const { values } = parseArgs({
  options: { seconds: { type: "string" }, soak: { type: "boolean" }, modules: { type: "boolean" }, https: { type: "boolean" }, "no-compare": { type: "boolean" } },
});
const soak = values.soak === true;
const seconds = Number(values.seconds ?? (soak ? 600 : 60));
if (!Number.isFinite(seconds) || seconds < 5 || (soak && seconds < 90)) {
  console.error(`bench/footprint: --seconds must be a number >= ${soak ? "90 with --soak" : 5}`);
  process.exit(2);
}
const TICKS = 100; // USER_HZ on Linux
const here = dirname(fileURLToPath(import.meta.url));
const daemonEntry = createRequire(import.meta.url).resolve("@kitt/daemon");
const cliBin = join(here, "..", "..", "apps", "cli", "bin", "run.js");
const hook = join(here, "modules-hook.mjs");
const v8FlagsModule = join(here, "..", "..", "apps", "cli", "dist", "lib", "v8-flags.js");
const compare = !soak && values["no-compare"] !== true;
const v8Label = process.env.KITT_AGENT_V8_FLAGS === undefined ? "the agent's V8 flags" : `KITT_AGENT_V8_FLAGS=${process.env.KITT_AGENT_V8_FLAGS}`;

async function sample(pid) {
  const stat = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1].split(" ");
  const cpu = (Number(stat[11]) + Number(stat[12])) / TICKS; // utime + stime
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  // RssAnon: the process's own memory; RssFile: pages of mapped files (most of it the node binary, shared and clean).
  return { cpu, rssMb: kb("VmRSS") / 1024, anonMb: kb("RssAnon") / 1024, fileMb: kb("RssFile") / 1024 };
}

/** Least-squares slope of (seconds, MiB) points, in MiB per hour. */
function slopePerHour(points) {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.t, 0) / n;
  const my = points.reduce((s, p) => s + p.mb, 0) / n;
  const sxy = points.reduce((s, p) => s + (p.t - mx) * (p.mb - my), 0);
  const sxx = points.reduce((s, p) => s + (p.t - mx) ** 2, 0);
  return sxx === 0 ? 0 : (sxy / sxx) * 3600;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `kitt-agent start --config FILE` for `config`, on a port the kernel just had free; resolves once it says it runs. */
async function startCli(config, nodeArgs, env) {
  const configPath = join(dir, `${config.name}.yaml`);
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  await writeAgentConfig(configPath, { ...config, port });
  return spawn(process.execPath, [...nodeArgs, cliBin, "start", "--config", configPath, "--log-format", "json"], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
}
const dir = await mkdtemp(join(tmpdir(), "kitt-bench-footprint-"));
const token = "bench-token-0123456789";
const name = "bench-agent";
const compareName = "bench-agent-v8-defaults";
const pki = values.https === true ? await writeTestPki(join(dir, "pki"), { clientCN: name }) : undefined;
const server = await startFakeKittServer({
  agents: [{ name, token }, { name: compareName, token }],
  ...(pki !== undefined
    ? { tls: { cert: await readFile(pki.serverCert, "utf8"), key: await readFile(pki.serverKey, "utf8"), ca: await readFile(pki.caCert, "utf8") } }
    : {}),
});
const children = [];
try {
  const share = join(dir, "share");
  await writeFakeModel(join(share, "m"));
  const config = {
    ...defaultConfig({ homedir: join(dir, "home"), hostname: name }),
    server_url: server.url,
    ...(pki !== undefined ? { tls: { cert: pki.clientCert, key: pki.clientKey, ca: pki.caCert } } : {}),
    token,
    name,
    host: "127.0.0.1",
    port: 0,
    heartbeat_interval_s: 10,
    model_storage_dir: join(dir, "models"),
    model_share_mount: share,
    model_share_source: "nas:/volume1/models",
    benchmark_command: await writeFakeBenchmark(join(dir, "bin"), { lines: 2000 }),
    execution: "host",
    state_dir: join(dir, "state"),
    log_level: "warn",
  };
  await mkdir(config.state_dir, { recursive: true, mode: 0o700 });
  await chmod(config.state_dir, 0o700);
  server.setSettings(name, {
    model_storage_dir: config.model_storage_dir,
    model_share_mount: share,
    model_share_source: config.model_share_source,
    heartbeat_interval_s: "10",
  });
  const nodeArgs = [...(values.modules === true ? ["--import", hook] : []), ...(process.env.FOOTPRINT_NODE_ARGS ?? "").split(" ").filter((a) => a !== "")];
  let agent;
  if (soak) {
    const configPath = join(dir, "config.json");
    await writeFile(configPath, JSON.stringify(config));
    // As kitt-agent start does: the V8 flags first (KITT_AGENT_V8_FLAGS), then the agent.
    const agentScript = `
      import { readFileSync } from "node:fs";
      const { applyV8Flags, daemonV8Flags } = await import(${JSON.stringify(v8FlagsModule)});
      applyV8Flags(daemonV8Flags(process.env));
      const { startAgent } = await import(${JSON.stringify(daemonEntry)});
      const sleep = (ms, signal) => new Promise((resolve) => {
        const t = setTimeout(resolve, ms);
        signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
      });
      const agent = await startAgent(JSON.parse(readFileSync(${JSON.stringify(configPath)}, "utf8")), {
        handleSignals: true,
        detect: { nvml: false },
        heartbeat: { sleep: (ms, signal) => sleep(Math.min(ms, 1000), signal) },
      });
      console.log("READY");
      await agent.done;
      process.exit(0);
    `;
    agent = spawn(process.execPath, [...nodeArgs, "--input-type=module", "-e", agentScript], { cwd: dirname(daemonEntry), stdio: ["ignore", "pipe", "pipe"] });
  } else {
    agent = await startCli(config, nodeArgs, process.env);
  }
  // The same daemon with V8's own defaults, in the same window.
  let other;
  if (compare) {
    const otherConfig = { ...config, name: compareName, model_storage_dir: join(dir, "models-2"), state_dir: join(dir, "state-2") };
    await mkdir(otherConfig.state_dir, { recursive: true, mode: 0o700 });
    await chmod(otherConfig.state_dir, 0o700);
    server.setSettings(compareName, { model_storage_dir: otherConfig.model_storage_dir, model_share_mount: share, model_share_source: config.model_share_source, heartbeat_interval_s: "10" });
    other = await startCli(otherConfig, nodeArgs, { ...process.env, KITT_AGENT_V8_FLAGS: "none" });
    children.push(other);
  }
  const reference = spawn(process.execPath, ["-e", "setInterval(() => {}, 10_000)"], { stdio: "ignore" });
  children.push(agent, reference);
  let stderr = "";
  agent.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
  agent.stdout.resume();
  await new Promise((resolve, reject) => {
    const ready = () => (soak ? true : /running; local API on/.test(stderr));
    agent.stdout.on("data", (c) => (String(c).includes("READY") || ready()) && resolve());
    agent.stderr.on("data", () => ready() && resolve());
    agent.once("exit", (code) => reject(new Error(`daemon exited early with code ${code}: ${stderr}`)));
  });
  if (other !== undefined) {
    let otherErr = "";
    other.stdout.resume();
    other.stderr.setEncoding("utf8");
    await new Promise((resolve, reject) => {
      other.stderr.on("data", (c) => {
        otherErr = (otherErr + c).slice(-16_384);
        if (/running; local API on/.test(otherErr)) resolve();
      });
      other.once("exit", (code) => reject(new Error(`the second daemon exited early with code ${code}: ${otherErr}`)));
    });
  }
  await server.waitFor(() => server.heartbeats.length >= (compare ? 2 : 1), 15_000);
  const beatsBefore = server.heartbeats.length;
  const o0 = other === undefined ? undefined : await sample(other.pid);
  let oPeak = o0?.rssMb ?? 0;
  const a0 = await sample(agent.pid);
  const r0 = await sample(reference.pid);
  let aPeak = a0.rssMb;
  let rPeak = r0.rssMb;
  const started = Date.now();
  const until = started + seconds * 1000;
  const points = [];
  let queued = 0;
  let nextJobAt = started;
  while (Date.now() < until) {
    if (soak && Date.now() >= nextJobAt) {
      server.queueTest({ agent_name: name, model_path: join(share, "m"), engine_name: "vllm", suite_name: "quick" });
      queued++;
      nextJobAt += 10_000;
    }
    await sleep(1000);
    const a = await sample(agent.pid);
    aPeak = Math.max(aPeak, a.rssMb);
    rPeak = Math.max(rPeak, (await sample(reference.pid)).rssMb);
    if (other !== undefined) oPeak = Math.max(oPeak, (await sample(other.pid)).rssMb);
    const t = (Date.now() - started) / 1000;
    if (t >= 60 && Math.round(t) % 5 === 0) points.push({ t, mb: a.rssMb });
  }
  const a1 = await sample(agent.pid);
  const r1 = await sample(reference.pid);
  // Then no more jobs: the copy workers end after 30 s idle (packages/storage/src/copy-pool.ts).
  let quiet;
  if (soak) {
    await server.waitFor(() => server.results.length >= queued, 60_000).catch(() => {});
    await sleep(45_000);
    quiet = await sample(agent.pid);
  }
  const o1 = other === undefined ? undefined : await sample(other.pid);
  const beats = server.heartbeats.length - beatsBefore;
  const row = (label, s0, s1, peak) =>
    `${label.padEnd(22)} RSS ${s0.rssMb.toFixed(1).padStart(6)} -> ${s1.rssMb.toFixed(1).padStart(6)} MiB (peak ${peak.toFixed(1)}; at the end ${s1.anonMb.toFixed(1)} private + ${s1.fileMb.toFixed(1)} file pages)   CPU ${(s1.cpu - s0.cpu).toFixed(2)} s`;
  if (soak) {
    const done = server.results.length;
    console.log(`soak: ${seconds} s, 1 s heartbeat, a job every 10 s: ${queued} queued, ${done} results received, ${beats} heartbeats`);
  } else console.log(`idle window: ${seconds} s, heartbeat interval 10 s, ${beats} heartbeats received by the ${server.protocol} server${pki !== undefined ? " (mTLS)" : ""} (daemons started with kitt-agent start)`);
  console.log(`kitt-agent daemon: ${v8Label}`);
  console.log(row("kitt-agent daemon", a0, a1, aPeak));
  if (o0 !== undefined && o1 !== undefined) console.log(row("same, V8 defaults", o0, o1, oPeak));
  console.log(row("bare node (reference)", r0, r1, rPeak));
  console.log(`daemon / reference: RSS x${(a1.rssMb / r1.rssMb).toFixed(2)}, private memory +${(a1.anonMb - r1.anonMb).toFixed(1)} MiB, CPU +${(a1.cpu - a0.cpu - (r1.cpu - r0.cpu)).toFixed(2)} s over ${seconds} s`);
  if (soak) console.log(`RSS slope after the first minute: ${slopePerHour(points).toFixed(2)} MiB/hour over ${points.length} samples`);
  if (quiet !== undefined) console.log(`45 s after the last job: RSS ${quiet.rssMb.toFixed(1)} MiB (${quiet.anonMb.toFixed(1)} private + ${quiet.fileMb.toFixed(1)} file pages)`);
  if (o1 !== undefined) console.log(`the agent's V8 flags save ${(o1.rssMb - a1.rssMb).toFixed(1)} MiB of RSS (${(o1.anonMb - a1.anonMb).toFixed(1)} private, ${(o1.fileMb - a1.fileMb).toFixed(1)} file pages)`);
  agent.kill("SIGTERM");
  await new Promise((r) => agent.once("exit", r));
  if (other !== undefined) {
    other.kill("SIGTERM");
    await new Promise((r) => other.once("exit", r));
  }
  const modules = stderr.indexOf("modules: ");
  if (values.modules === true) console.log(modules === -1 ? "(the daemon printed no module list)" : stderr.slice(modules).trimEnd());
  if (process.env.FOOTPRINT_SHOW_STDERR === "1") console.log(stderr);
} finally {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
