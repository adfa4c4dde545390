// ./dev demo: what the project can do end to end on this machine today.
//
// The agent loop (issue 5) is not built yet, so this demo drives the real
// @kitt/protocol client by hand against the fake KITT server from
// @kitt/testkit, over HTTPS with mutual TLS on 127.0.0.1. Every request below
// really crosses a TLS connection; nothing is simulated inside this process.
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";

import { KittServerClient, MemoryLogger } from "@kitt/protocol";
import { startFakeKittServer, writeTestPki } from "@kitt/testkit";

const say = (text) => console.log(text);
const step = (n, text) => say(`\n[${n}] ${text}`);

const dir = await mkdtemp(join(tmpdir(), "kitt-demo-"));
const token = "demo-token-0123456789";
const name = hostname().replace(/[^A-Za-z0-9._-]/g, "-") || "demo-agent";
let server;
let client;
try {
  step(1, "Throw-away CA, server and client certificates (ECDSA P-256)");
  const pki = await writeTestPki(join(dir, "pki"), { clientCN: name });
  say(`    written to ${pki.dir}`);

  step(2, "Fake KITT server over HTTPS, client certificates required");
  const { readFile } = await import("node:fs/promises");
  const pem = async (p) => readFile(p, "utf8");
  server = await startFakeKittServer({
    tls: { cert: await pem(pki.serverCert), key: await pem(pki.serverKey), ca: await pem(pki.caCert) },
    agents: [{ name, token }],
  });
  say(`    listening on ${server.url}; agent "${name}" provisioned with a token`);

  const log = new MemoryLogger();
  client = new KittServerClient({
    serverUrl: server.url,
    token,
    tls: { ca: await pem(pki.caCert), cert: await pem(pki.clientCert), key: await pem(pki.clientKey) },
    logger: log,
  });

  step(3, "GET /api/v1/health");
  say(`    ${JSON.stringify(await client.health())}`);

  step(4, "POST /api/v1/agents/register (mTLS, Bearer token)");
  const reg = await client.register({ name, hostname: hostname(), port: 8090, gpu_count: 0, kitt_version: "0.1.0", capabilities: [] });
  say(`    agent_id ${reg.agent_id}, heartbeat every ${reg.heartbeat_interval_s}s; server saw client certificate CN=${server.requests.at(-1)?.clientCertCN}`);

  step(5, "An operator queues a quick test; settings changed on the server (strings, mixed-case booleans)");
  const test = server.queueTest({ agent_name: name, model_path: "/models/Qwen2.5-0.5B-Instruct", engine_name: "vllm", suite_name: "quick" });
  server.setSettings(name, { auto_cleanup: "False", heartbeat_interval_s: "45" });
  say(`    test ${test.id} is ${server.getTest(test.id)?.status}`);

  step(6, "Heartbeat: the command arrives once, settings are normalised");
  const hb = await client.heartbeat(reg.agent_id, { status: "idle", gpu_utilization_pct: 0, gpu_memory_used_gb: 0, uptime_s: 1 });
  for (const cmd of hb.commands) say(`    command ${cmd.kind} ${cmd.command_id} for test ${cmd.test_id}`);
  say(`    settings ${JSON.stringify(hb.settings)}`);
  const again = await client.heartbeat(reg.agent_id, { status: "running", current_task: test.id });
  say(`    next heartbeat carries ${again.commands.length} command(s); test is now ${server.getTest(test.id)?.status}`);

  step(7, "Status and log lines flow back; the server stores them in order");
  await client.postStatus(test.id, { status: "running" });
  await client.postLog(test.id, "(demo) no benchmark runs yet: the runner is issue 5");
  await client.postLog(test.id, "(demo) several lines\n(demo) in one request");
  await client.postStatus(test.id, { status: "failed", error: "demo: runner not built yet" });
  const logs = await client.getTestLogs(test.id);
  for (const l of logs.lines) say(`    log: ${JSON.stringify(l.line)}`);
  const row = await client.getTest(test.id);
  say(`    test ${row.id}: ${row.status} (${row.error})`);

  step(8, "Faults: two 503s and a dropped connection, retried with backoff and jitter");
  server.failNext(2, 503, { error: "maintenance" });
  server.dropNext(1, { path: "/api/v1/health" });
  const t0 = Date.now();
  await client.health();
  say(`    recovered in ${Date.now() - t0} ms:`);
  for (const r of log.records.filter((r) => r.level === "warn")) say(`    ${r.message}`);

  step(9, "A client without a certificate is turned away at the TLS layer");
  const anon = new KittServerClient({ serverUrl: server.url, token, tls: { ca: await pem(pki.caCert) }, retries: 0 });
  try {
    await anon.health();
    say("    UNEXPECTED: accepted");
    process.exitCode = 1;
  } catch (err) {
    say(`    ${err.message}`);
  } finally {
    anon.close();
  }
  say("\nDemo finished. The agent daemon, runner and CLI come with later issues.");
} finally {
  client?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
}
