/**
 * bench/logs, SSE readers: a 20,000-line job (one write per line, as a
 * chatty benchmark prints) through a real daemon in its own process, first
 * with one SSE reader, then with BENCH_READERS more, all reading (in this
 * process). Prints the job's own run time in both cases and their ratio:
 * the job's stdout blocks whenever the agent falls behind reading it.
 *
 *   BENCH_READERS=500 ./dev bench:logs
 */
import { spawn } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";

import { defaultConfig, type AgentConfig } from "@kitt/protocol";
import { startFakeKittServer, writeFakeModel, writeFloodBenchmark } from "@kitt/testkit";

const TOKEN = "bench-token-0123456789";

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Bytes one SSE reader received, once the stream ended; its last text too (child_ms is the job's last line). */
function reader(url: string, commandId: string): Promise<{ opened: Promise<void>; done: Promise<{ bytes: number; tail: string }> }> {
  return new Promise((resolveOuter, reject) => {
    let opened!: () => void;
    const openedP = new Promise<void>((r) => (opened = r));
    const done = new Promise<{ bytes: number; tail: string }>((resolveDone) => {
      const req = request(`${url}/api/logs/${commandId}`, { headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`SSE answered ${res.statusCode}`));
        opened();
        let bytes = 0;
        let tail = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          bytes += c.length;
          tail = (tail + c).slice(-4096);
        });
        res.on("end", () => resolveDone({ bytes, tail }));
      });
      req.once("error", reject);
      req.end();
    });
    resolveOuter({ opened: openedP, done });
  });
}

export async function benchReaders(dir: string, lines: number, readers: number): Promise<boolean> {
  const { path: script, go } = await writeFloodBenchmark(join(dir, "bin"), lines);
  const share = join(dir, "share");
  await writeFakeModel(join(share, "m"));
  const server = await startFakeKittServer({ agents: [{ name: "bench-readers", token: TOKEN }] });
  const config: AgentConfig = {
    ...defaultConfig({ homedir: join(dir, "home"), hostname: "bench-readers" }),
    server_url: server.url,
    token: TOKEN,
    name: "bench-readers",
    host: "127.0.0.1",
    port: 0,
    model_storage_dir: join(dir, "models"),
    model_share_mount: share,
    model_share_source: "nas:/models",
    benchmark_command: script,
    execution: "host",
    state_dir: join(dir, "state"),
    log_level: "warn",
  };
  server.setSettings(config.name, { model_storage_dir: config.model_storage_dir, model_share_mount: share, model_share_source: "nas:/models" });
  await mkdir(config.state_dir, { recursive: true, mode: 0o700 });
  const configPath = join(dir, "agent.json");
  await writeFile(configPath, JSON.stringify(config));
  // The daemon in its own process, as in production: the readers here do not share its event loop.
  const child = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { readFileSync } from "node:fs";
       import { startAgent } from "@kitt/daemon";
       const agent = await startAgent(JSON.parse(readFileSync(${JSON.stringify(configPath)}, "utf8")), { detect: { nvml: false }, handleSignals: true });
       console.log("READY " + agent.url);
       await agent.done;`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /READY (\S+)/.exec(out);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`daemon exited with ${code}`)));
  });

  const run = async (id: string, extra: number) => {
    await rm(go, { force: true });
    const res = await fetch(`${url}/api/commands`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ command_id: id, test_id: `t-${id}`, type: "run_test", payload: { model_path: join(share, "m"), engine_name: "vllm", suite_name: "quick" } }),
    });
    if (res.status !== 202) throw new Error(`run_test answered ${res.status}`);
    const all = await Promise.all(Array.from({ length: 1 + extra }, () => reader(url, id)));
    await Promise.all(all.map((r) => r.opened));
    const started = performance.now();
    await writeFile(go, "");
    const results = await Promise.all(all.map((r) => r.done));
    const wallMs = performance.now() - started;
    const childMs = Number(/child_ms (\d+)/.exec(results[0]?.tail ?? "")?.[1]);
    return { childMs, wallMs, mib: results.reduce((n, r) => n + r.bytes, 0) / 2 ** 20 };
  };

  const alone = await run("alone", 0);
  const crowd = await run("crowd", readers);
  const ratio = crowd.childMs / Math.max(1, alone.childMs);
  print(`SSE readers: ${lines} lines through a spawned daemon`);
  print(`job run time, 1 reader:        ${alone.childMs} ms (job to last reader's end ${alone.wallMs.toFixed(0)} ms, ${alone.mib.toFixed(1)} MiB sent)`);
  print(`job run time, ${1 + readers} readers:     ${crowd.childMs} ms (ratio ${ratio.toFixed(2)}; job to last reader's end ${crowd.wallMs.toFixed(0)} ms, ${crowd.mib.toFixed(1)} MiB sent)`);
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  await server.close();
  return Number.isFinite(ratio);
}
