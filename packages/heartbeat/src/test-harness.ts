import { type AgentSettings, KittServerClient, MemoryLogger, type ServerCommand } from "@kitt/protocol";
import { type FakeKittServer, startFakeKittServer } from "@kitt/testkit";

import { HeartbeatLoop } from "./heartbeat-loop.js";
import { ManualSleeper } from "./test-sleeper.js";
import type { HeartbeatHealth, HeartbeatLoopOptions, StatusSnapshot } from "./types.js";

export const NAME = "gpu-node-01";
export const TOKEN = "hb-test-token-1234";
export const T0 = 1_700_000_000_000;

type Hook = (fn: () => Promise<void>) => void;

/**
 * A fake KITT server on 127.0.0.1, a real KittServerClient, and a loop
 * whose waits are fired by hand. Everything is torn down after each test.
 */
export function useHarness(afterEach: Hook) {
  const servers: FakeKittServer[] = [];
  const clients: KittServerClient[] = [];
  const loops: HeartbeatLoop[] = [];
  afterEach(async () => {
    await Promise.all(loops.splice(0).map((l) => l.stop({ abort: true })));
    for (const c of clients.splice(0)) c.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  async function server(): Promise<FakeKittServer> {
    const s = await startFakeKittServer({ agents: [{ name: NAME, token: TOKEN }] });
    servers.push(s);
    return s;
  }

  function client(srv: FakeKittServer, token = TOKEN): KittServerClient {
    // The client's own defaults (5 s connect, 15 s exchange): no test here depends on a client timeout.
    const c = new KittServerClient({ serverUrl: srv.url, token });
    clients.push(c);
    return c;
  }

  function loop(srv: FakeKittServer, extra: Partial<HeartbeatLoopOptions> = {}) {
    const sleeper = new ManualSleeper();
    const logger = new MemoryLogger();
    const commands: ServerCommand[] = [];
    const settings: AgentSettings[] = [];
    const health: HeartbeatHealth[] = [];
    const ids: string[] = [];
    const clock = { t: T0, now: () => clock.t };
    const status: { current: StatusSnapshot } = {
      current: { status: "idle", current_task: "", gpu_utilization_pct: 3, gpu_memory_used_gb: 1.5, storage_gb_free: 812.4 },
    };
    const hb = new HeartbeatLoop({
      client: extra.client ?? client(srv),
      registration: () => ({ name: NAME, hostname: "host-01", port: 8090, gpu_count: 1 }),
      status: () => status.current,
      onCommand: (c) => {
        commands.push(c);
      },
      onSettings: (s) => {
        settings.push(s);
      },
      onHealthChange: (h) => health.push(h),
      onAgentId: (id) => ids.push(id),
      sleep: sleeper.sleep,
      logger,
      clock,
      random: () => 0.5,
      ...extra,
    });
    loops.push(hb);
    const lines = (level: string, pattern: RegExp) => logger.records.filter((r) => r.level === level && pattern.test(r.message));
    return { loop: hb, sleeper, logger, commands, settings, health, ids, clock, status, lines };
  }

  return { server, client, loop };
}
