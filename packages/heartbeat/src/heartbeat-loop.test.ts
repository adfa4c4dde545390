import { sleep } from "@kitt/protocol";
import { afterEach, describe, expect, it, vi } from "vitest";

import { HeartbeatLoop } from "./heartbeat-loop.js";
import { NAME, T0, useHarness } from "./test-harness.js";

const h = useHarness(afterEach);
const HEARTBEAT = /\/heartbeat$/;

describe("HeartbeatLoop: start and cadence", () => {
  it("registers, then sends the first heartbeat at once with the daemon's figures", async () => {
    const srv = await h.server();
    const t = h.loop(srv, {
      random: () => 0,
      status: () => ({
        status: "idle",
        current_task: "",
        gpu_utilization_pct: 37,
        gpu_memory_used_gb: 12.5,
        storage_gb_free: 812.4,
        gpus: [{ index: 0, name: "NVIDIA H200", uuid: "GPU-0", utilization_pct: 37, memory_used_gb: 12.5 }],
      }),
    });
    t.clock.t = T0 + 42_000;
    await t.loop.start();
    const wait = await t.sleeper.next();

    const agentId = srv.agent(NAME)?.id;
    expect(srv.registrations).toHaveLength(1);
    expect(srv.registrations[0]?.body).toMatchObject({ name: NAME, hostname: "host-01" });
    expect(srv.heartbeats).toHaveLength(1);
    expect(srv.heartbeats[0]?.idInPath).toBe(agentId);
    expect(srv.heartbeats[0]?.body).toEqual({
      status: "idle",
      current_task: "",
      gpu_utilization_pct: 37,
      gpu_memory_used_gb: 12.5,
      storage_gb_free: 812.4,
      uptime_s: 42,
      gpus: [{ index: 0, name: "NVIDIA H200", uuid: "GPU-0", utilization_pct: 37, memory_used_gb: 12.5 }],
    });
    expect(wait.ms).toBe(30_000);
    expect(t.ids).toEqual([agentId]);
    expect(t.loop.state).toMatchObject({
      agentId,
      health: "ok",
      statusOverride: null,
      successes: 1,
      failures: 0,
      consecutiveFailures: 0,
      lastSuccessAt: T0 + 42_000,
      intervalS: 30,
      nextDelayMs: 30_000,
      running: true,
    });
    expect(t.health).toEqual(["ok"]);
  });

  it("beats once per wait, each wait the interval plus at most 10% jitter", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { random: Math.random });
    await t.loop.start();
    for (let i = 1; i <= 6; i++) {
      const ms = await t.sleeper.fireNext();
      expect(ms).toBeGreaterThanOrEqual(30_000);
      expect(ms).toBeLessThanOrEqual(33_000);
    }
    await t.sleeper.next();
    expect(srv.heartbeats).toHaveLength(7);
    expect(srv.registrations).toHaveLength(1);
    // Jitter really varies the waits (six equal draws from Math.random are not a thing).
    expect(new Set(t.sleeper.requested).size).toBeGreaterThan(1);
  });

  it("waits at least 60 s while a job runs, and the interval again once idle", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { random: () => 0 });
    t.status.current = { status: "running", current_task: "t-1" };
    await t.loop.start();
    expect((await t.sleeper.next()).ms).toBe(60_000);
    expect(srv.heartbeats[0]?.body).toMatchObject({ status: "running", current_task: "t-1" });
    t.status.current = { status: "idle" };
    await t.sleeper.fireNext();
    expect((await t.sleeper.next()).ms).toBe(30_000);
  });

  it("the wait after a heartbeat that handed over a job already counts as running", async () => {
    const srv = await h.server();
    srv.queueTest({ agent_name: NAME, model_path: "/m", engine_name: "vllm", suite_name: "quick" });
    const t = h.loop(srv, { random: () => 0 });
    await t.loop.start();
    const first = await t.sleeper.next();
    // The status was read (idle) before the response handed the job over.
    expect(srv.heartbeats[0]?.body).toMatchObject({ status: "idle" });
    expect(srv.heartbeats[0]?.commands).toHaveLength(1);
    expect(first.ms).toBe(60_000);
    await t.sleeper.fireNext();
    expect((await t.sleeper.next()).ms).toBe(30_000);
  });

  it("nudge() (the agent became idle) cuts the 60 s wait after a dispatch short: the next command comes at once", async () => {
    const srv = await h.server();
    for (let i = 0; i < 2; i++) srv.queueTest({ agent_name: NAME, model_path: "/m", engine_name: "vllm", suite_name: "quick" });
    const t = h.loop(srv, { random: () => 0 });
    await t.loop.start();
    const floor = await t.sleeper.next();
    expect(floor.ms).toBe(60_000);
    expect(t.commands).toHaveLength(1);
    // The job ran 5 s and ended: the agent is idle, the server still holds one command.
    t.clock.t += 5_000;
    t.loop.nudge();
    await vi.waitFor(() => expect(t.commands).toHaveLength(2), { timeout: 2_000, interval: 5 });
    expect(srv.heartbeats).toHaveLength(2);
    // No least-gap wait was needed (5 s had passed); the new wait is the floor again (a job was handed over).
    expect((await t.sleeper.next()).ms).toBe(60_000);
    expect(t.sleeper.requested).toEqual([60_000, 60_000]);
  });

  it("nudge() right after a heartbeat waits the least gap first; nudges while failing leave the backoff alone", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { random: () => 0, nudgeMinGapMs: 1_000 });
    await t.loop.start();
    await t.sleeper.next();
    t.clock.t += 300;
    t.loop.nudge();
    const gap = await vi.waitFor(() => {
      const s = t.sleeper.requested;
      expect(s).toHaveLength(2);
      return s[1];
    });
    expect(gap).toBe(700);
    expect(srv.heartbeats).toHaveLength(1);
    t.clock.t += 700;
    await t.sleeper.fireNext();
    await vi.waitFor(() => expect(srv.heartbeats).toHaveLength(2), { timeout: 2_000, interval: 5 });
    expect((await t.sleeper.next()).ms).toBe(30_000);

    // The server fails: a nudge does not hurry past the backoff.
    srv.failNext(1, 500, { error: "down" }, { path: HEARTBEAT });
    await t.sleeper.fireNext();
    await vi.waitFor(() => expect(t.loop.state.health).toBe("failing"), { timeout: 2_000, interval: 5 });
    const backoff = await t.sleeper.next();
    t.clock.t += 5_000;
    t.loop.nudge();
    await new Promise((r) => setTimeout(r, 50));
    expect(t.sleeper.sleeping).toBe(true);
    expect(await t.sleeper.next()).toBe(backoff);
    expect(srv.requests.filter((r) => HEARTBEAT.test(r.path))).toHaveLength(3);
  });

  it("nudge() during an in-flight heartbeat sends one more after it", async () => {
    const srv = await h.server();
    srv.delayNext(1, 150, { path: HEARTBEAT });
    const t = h.loop(srv, { agentId: NAME, random: () => 0 });
    await t.loop.start();
    await vi.waitFor(() => expect(srv.requests).toHaveLength(1), { timeout: 2_000, interval: 5 });
    t.loop.nudge();
    // One least-gap wait (the clock stands still here), then the second heartbeat.
    expect((await t.sleeper.next()).ms).toBe(1_000);
    expect(srv.heartbeats).toHaveLength(1);
    await t.sleeper.fireNext();
    await vi.waitFor(() => expect(srv.heartbeats).toHaveLength(2), { timeout: 2_000, interval: 5 });
    expect((await t.sleeper.next()).ms).toBe(30_000);
  });

  it("keeps a longer interval while running", async () => {
    const srv = await h.server();
    srv.setSettings(NAME, { heartbeat_interval_s: 120 });
    const t = h.loop(srv, { random: () => 1, status: () => ({ status: "running", current_task: "t-2" }) });
    await t.loop.start();
    expect((await t.sleeper.next()).ms).toBe(132_000);
  });

  it("uses the interval of the register response", async () => {
    const srv = await h.server();
    srv.setSettings(NAME, { heartbeat_interval_s: 20 });
    // A heartbeat answer without settings: the register response's 20 s is all there is.
    srv.failNext(1, 200, { ack: true, commands: [] }, { path: HEARTBEAT });
    const t = h.loop(srv, { random: () => 0 });
    await t.loop.start();
    expect((await t.sleeper.next()).ms).toBe(20_000);
    expect(t.loop.state.intervalS).toBe(20);
  });

  it("applies the server's string settings and calls onSettings only when they change", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { random: () => 0 });
    await t.loop.start();
    await t.sleeper.next();
    expect(t.settings).toEqual([{ auto_cleanup: true, heartbeat_interval_s: 30, model_storage_dir: "~/.kitt/models" }]);

    // As the web UI saves them: "False", "45", and an empty string meaning "not set".
    srv.setSettings(NAME, { heartbeat_interval_s: 45, auto_cleanup: false, model_storage_dir: "/data/models", kitt_image: "" });
    expect(srv.agent(NAME)?.settings).toMatchObject({ heartbeat_interval_s: "45", auto_cleanup: "False" });
    await t.sleeper.fireNext();
    expect((await t.sleeper.next()).ms).toBe(45_000);
    expect(t.settings[1]).toEqual({ auto_cleanup: false, heartbeat_interval_s: 45, model_storage_dir: "/data/models" });

    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(t.settings).toHaveLength(2);
    expect(t.loop.state.intervalS).toBe(45);
  });

  it("clamps an interval out of range and logs the bad value once", async () => {
    const srv = await h.server();
    srv.setSettings(NAME, { heartbeat_interval_s: 5, auto_cleanup: "maybe" });
    const t = h.loop(srv, { random: () => 0 });
    await t.loop.start();
    expect((await t.sleeper.next()).ms).toBe(10_000);
    await t.sleeper.fireNext();
    await t.sleeper.next();
    const warned = t.lines("warn", /settings partly ignored/);
    expect(warned).toHaveLength(1);
    expect(warned[0]?.message).toMatch(/auto_cleanup: expected a boolean, got "maybe"/);
    expect(warned[0]?.message).toMatch(/5 is outside 10\.\.300, using 10/);
  });

  it("beatNow() sends a heartbeat without waiting out the interval", async () => {
    const srv = await h.server();
    const t = h.loop(srv);
    await t.loop.start();
    const first = await t.sleeper.next();
    await t.loop.beatNow();
    expect(srv.heartbeats).toHaveLength(2);
    // The 30 s wait was cut short (never fired), and a fresh one began.
    const second = await t.sleeper.next();
    expect(second).not.toBe(first);
    expect(t.sleeper.requested).toEqual([31_500, 31_500]);
  });

  it("beatNow() during an in-flight heartbeat sends one more right after it", async () => {
    const srv = await h.server();
    srv.delayNext(1, 150, { path: HEARTBEAT });
    const t = h.loop(srv, { agentId: NAME });
    await t.loop.start();
    await vi.waitFor(() => expect(srv.requests).toHaveLength(1), { timeout: 2_000, interval: 5 });
    expect(srv.heartbeats).toHaveLength(0); // still delayed on the server
    await t.loop.beatNow();
    expect(srv.heartbeats).toHaveLength(2);
    await t.sleeper.next();
    expect(t.sleeper.requested).toHaveLength(1);
  });

  it("refuses to start twice", async () => {
    const srv = await h.server();
    const t = h.loop(srv);
    await t.loop.start();
    await expect(t.loop.start()).rejects.toThrow(/already started/);
  });
});

describe("HeartbeatLoop: stop", () => {
  it("stop() resolves with no timer left behind (real sleep)", async () => {
    const srv = await h.server();
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    let sleeping = 0;
    const realSleep = (ms: number, signal?: AbortSignal) => {
      sleeping++;
      return sleep(ms, signal).finally(() => sleeping--);
    };
    const t = h.loop(srv, { sleep: realSleep });
    const before = timers();
    await t.loop.start();
    await t.loop.beatNow();
    expect(srv.heartbeats.length).toBeGreaterThanOrEqual(1);
    expect(sleeping).toBe(1); // in a real 30 s wait
    await t.loop.stop();
    expect(sleeping).toBe(0);
    expect(t.loop.state.running).toBe(false);
    // Other timers (the HTTP client's) may end a moment later; a leaked 30 s wait would not.
    await vi.waitFor(() => expect(timers()).toBeLessThanOrEqual(before), { timeout: 1_000, interval: 10 });
    await t.loop.stop(); // twice is fine
  });

  it("stop({ abort: true }) cancels an in-flight heartbeat without counting a failure", async () => {
    const srv = await h.server();
    srv.delayNext(1, 3_000, { path: HEARTBEAT });
    const t = h.loop(srv, { agentId: NAME });
    await t.loop.start();
    while (srv.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    await t.loop.stop({ abort: true });
    expect(t.loop.state).toMatchObject({ successes: 0, failures: 0, running: false });
    expect(t.sleeper.requested).toEqual([]);
  });

  it("a loop never started stops at once; beatNow() after stop resolves", async () => {
    const srv = await h.server();
    const t = h.loop(srv);
    await t.loop.stop();
    await t.loop.beatNow();
    expect(srv.requests).toHaveLength(0);
  });

  it("rejects nonsense options with a clear error", () => {
    const base = { client: {} as never, registration: () => ({ name: "n", hostname: "h" }), status: () => ({ status: "idle" as const }), onCommand: () => {} };
    expect(() => new HeartbeatLoop({ ...base, backoff: { baseMs: 0, maxMs: 10 } })).toThrow(/backoff needs 0 < baseMs <= maxMs/);
    expect(() => new HeartbeatLoop({ ...base, jitterRatio: 2 })).toThrow(/jitterRatio must be within 0..1/);
  });
});
