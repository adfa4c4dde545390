/** Test fixtures for end-to-end daemon tests: a temp world with a share, a model, a fake benchmark and a fake server. */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";

import { defaultConfig, sleep, type AgentConfig } from "@kitt/protocol";
import { type FakeBenchmarkOptions, type FakeKittServer, startFakeKittServer, writeFakeBenchmark, writeFakeModel } from "@kitt/testkit";
import { JobJournal, type JournalRecord } from "@kitt/runner";

import { type AgentHandle, startAgent, type StartAgentOptions } from "./agent.js";
import { createAgentLogger } from "./logging.js";

export const TOKEN = "e2e-token-0123456789";
export const AGENT = "e2e-agent";
export const MODEL = "/data/models/hf/Qwen/Qwen2.5-0.5B-Instruct";

export interface World {
  dir: string;
  server: FakeKittServer;
  config: AgentConfig;
  logText: () => string;
  agents: AgentHandle[];
  start(extra?: StartAgentOptions): Promise<AgentHandle>;
}

export async function makeWorld(
  dir: string,
  bench: FakeBenchmarkOptions = {},
  configPatch: Partial<AgentConfig> = {},
  options: { serverSettings?: boolean; name?: string } = {},
): Promise<World> {
  const name = options.name ?? AGENT;
  const server = await startFakeKittServer({ agents: [{ name, token: TOKEN }] });
  await writeFakeModel(join(dir, "share", "hf", "Qwen", "Qwen2.5-0.5B-Instruct"));
  const benchmark = await writeFakeBenchmark(join(dir, "bin"), bench);
  // 0700 whatever the umask: the agent refuses a state dir group or others can write to.
  await mkdir(join(dir, "state"), { recursive: true, mode: 0o700 });
  const config: AgentConfig = {
    ...defaultConfig({ homedir: join(dir, "home"), hostname: name }),
    server_url: server.url,
    token: TOKEN,
    name,
    host: "127.0.0.1",
    port: 0,
    model_storage_dir: join(dir, "models"),
    model_share_mount: join(dir, "share"),
    model_share_source: "nas:/volume1/models",
    heartbeat_interval_s: 10,
    benchmark_command: benchmark,
    // The host's fake benchmark, whatever images the engine holds (another test may tag kitt:latest).
    execution: "host",
    cancel_grace_s: 2,
    state_dir: join(dir, "state"),
    log_level: "debug",
    ...configPatch,
  };
  // The server's settings win over agent.yaml (as with the real server), and
  // its defaults name ~/.kitt/models: point them at this test's directories.
  if (options.serverSettings !== false) server.setSettings(name, {
    model_storage_dir: config.model_storage_dir,
    model_share_mount: config.model_share_mount,
    model_share_source: config.model_share_source,
    auto_cleanup: config.auto_cleanup ? "True" : "False",
  });
  let text = "";
  const sink = new PassThrough();
  sink.on("data", (c: Buffer) => (text += c.toString()));
  const agents: AgentHandle[] = [];
  return {
    dir,
    server,
    config,
    agents,
    logText: () => text,
    async start(extra: StartAgentOptions = {}) {
      const agent = await startAgent(config, {
        logger: createAgentLogger({ level: "debug", stdout: sink, secrets: [TOKEN] }),
        detect: { nvml: false },
        // Heartbeats every ~30 ms instead of every 10 s: same code path, shorter waits.
        heartbeat: { sleep: (ms, signal) => sleep(Math.min(ms, 30), signal) },
        flushTimeoutMs: 3000,
        ...extra,
      });
      agents.push(agent);
      return agent;
    },
  };
}

export async function closeWorld(world: World): Promise<void> {
  await Promise.all(world.agents.map((a) => a.stop()));
  await world.server.close();
}

/** The jobs a restarted agent would find unfinished in the journal under `stateDir`. */
export async function openJournalJobs(stateDir: string): Promise<JournalRecord[]> {
  const journal = new JobJournal(join(stateDir, "jobs"));
  const open = await journal.load();
  await journal.close();
  return open;
}
