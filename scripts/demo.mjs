// ./dev demo: the agent end to end on this machine, for real.
//
// A fake KITT server (from @kitt/testkit) stands in for the control plane and
// a clearly named demo script stands in for `kitt run` (no GPU here). All the
// rest is the real thing: the daemon registers, heartbeats, takes the queued
// test, stages the model from the "share" onto local disk (atomic copy,
// manifest), runs the benchmark in its own process group, streams its lines
// to the server and over its own SSE API, reports the result and evicts the
// staged copy. Everything happens on 127.0.0.1 in a temp directory.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const say = (text) => console.log(text);
const step = (n, text) => say(`\n[${n}] ${text}`);

// What is not the real thing, said before anything runs (and by --help).
const STAND_INS = `./dev demo runs the real kitt-agent daemon on 127.0.0.1 in a temp directory. Stand-ins:
  - KITT server: a fake one from @kitt/testkit (registration, heartbeats, queue, results), not a real control plane
  - benchmark: kitt-demo-benchmark, a script that prints progress and writes metrics.json, in place of \`kitt run\`
  - GPU: NVML off (no GPU needed); the hardware reported is this machine's CPU, RAM and disks
  - heartbeat: forced to every 10 s by the fake server's settings (a real server's default is 30 s)
  - model share: a local directory with a small fake model (4 x 8 MiB shards), not an NFS mount
Everything else is the real agent: staging, the job's process group, log streaming, reporting, cleanup.`;

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  say(STAND_INS);
  process.exit(0);
}
say(STAND_INS);

const { startAgent } = await import("@kitt/daemon");
const { defaultConfig } = await import("@kitt/protocol");
const { startFakeKittServer, writeFakeBenchmark, writeFakeModel } = await import("@kitt/testkit");
const started = Date.now();

const dir = await mkdtemp(join(tmpdir(), "kitt-demo-"));
const token = "demo-token-0123456789";
const name = "demo-agent";
let server;
let agent;
try {
  step(1, "A fake KITT server (stand-in for the real one) on 127.0.0.1 with one provisioned agent");
  server = await startFakeKittServer({ agents: [{ name, token }] });
  say(`    ${server.url}`);

  step(2, "A model on the 'NFS share' and a demo benchmark standing in for `kitt run`");
  const share = join(dir, "share");
  await writeFakeModel(join(share, "hf", "Qwen", "Qwen2.5-0.5B-Instruct"), { shards: 4, shardBytes: 8 * 1024 * 1024 });
  const benchmark = await writeFakeBenchmark(join(dir, "bin"), { name: "kitt-demo-benchmark", lines: 8, stderrLine: true });
  say(`    share: ${share} (4 x 8 MiB shards + config files)`);
  say(`    benchmark: ${benchmark} (prints progress, writes metrics.json)`);

  step(3, "The agent daemon starts (NVML off, heartbeat forced to 10 s): detects hardware, registers, heartbeats, serves its API");
  const config = {
    ...defaultConfig({ homedir: join(dir, "home"), hostname: name }),
    server_url: server.url,
    token,
    name,
    host: "127.0.0.1",
    port: 0,
    model_storage_dir: join(dir, "home", ".kitt", "models"),
    model_share_mount: share,
    model_share_source: "nas:/volume1/models",
    benchmark_command: benchmark,
    state_dir: join(dir, "home", ".kitt"),
    log_level: "warn",
  };
  // The server's settings win over agent.yaml, as with the real server: point them here.
  server.setSettings(name, {
    model_storage_dir: config.model_storage_dir,
    model_share_mount: share,
    model_share_source: config.model_share_source,
    auto_cleanup: "True",
    heartbeat_interval_s: "10",
  });
  agent = await startAgent(config, { detect: { nvml: false } });
  await server.waitFor(() => server.heartbeats.length > 0, 10_000);
  const reg = server.registrations[0]?.body ?? {};
  say(`    local API ${agent.url}; registered as ${server.agent(name)?.id}`);
  say(`    fingerprint ${reg.fingerprint}`);

  step(4, "An operator queues a quick test on the server");
  const test = server.queueTest({
    agent_name: name,
    model_path: "/data/models/hf/Qwen/Qwen2.5-0.5B-Instruct",
    engine_name: "vllm",
    suite_name: "quick",
  });
  say(`    test ${test.id}, command ${test.command_id}: ${server.getTest(test.id)?.status}`);
  say("    (the agent picks it up with its next heartbeat, at most ~11 s away)");

  step(5, "The job's log stream, read from the agent's SSE endpoint");
  // The agent reports `running` once it has taken the job: its stream exists from then on.
  await server.waitFor(() => server.statuses(test.id).length > 0, 20_000);
  const res = await fetch(`${agent.url}/api/logs/${test.command_id}`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`GET /api/logs/${test.command_id}: HTTP ${res.status} ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = "";
  let end;
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) !== -1) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(frame)?.[1];
      const data = /^data: (.*)$/m.exec(frame)?.[1];
      if (event === "log") say(`    | ${JSON.parse(data).line}`);
      if (event === "end") end = JSON.parse(data);
    }
    if (end) break;
  }
  say(`    end: ${JSON.stringify(end)}`);

  step(6, "What the server saw");
  await server.waitFor(() => server.results.length > 0 && ["completed", "failed"].includes(server.getTest(test.id)?.status), 20_000);
  say(`    status transitions: ${server.statuses(test.id).join(" -> ")}`);
  say(`    log rows stored: ${server.logLines(test.id).length} (lines batched per request)`);
  say(`    result: ${JSON.stringify(server.results[0]?.body)}`);
  const left = await readdir(config.model_storage_dir, { recursive: true });
  say(`    staged copy after auto_cleanup: ${left.filter((p) => p.endsWith(".safetensors")).length} shard(s) left`);

  step(7, "Stop the agent");
  await agent.stop();
  agent = undefined;
  say(`    stopped; demo took ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (err) {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await agent?.stop();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
}
