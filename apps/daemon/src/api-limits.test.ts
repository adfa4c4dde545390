import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { join } from "node:path";

import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { resolveApiLimits, openFileLimit } from "./api-server.js";
import { AGENT, MODEL, TOKEN, closeWorld, makeWorld, type World } from "./test-agent.js";
import { agentReady, killProcessTree, spawnAgent } from "./test-spawn.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
const pids: number[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const pid of pids.splice(0)) killProcessTree(pid);
  await Promise.all(worlds.splice(0).map(closeWorld));
});

const auth = { authorization: `Bearer ${TOKEN}` };

/**
 * The connections the agent holds on its API port (the listener left out): its sockets, by the
 * inodes of /proc/PID/fd, looked up in /proc/PID/net/tcp{,6}. Counting all its fds instead
 * also counted its own client sockets to the fake server, which come and go with heartbeats.
 */
function apiConnections(pid: number, port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode !== undefined) inodes.add(inode);
    } catch {
      // closed while we looked
    }
  }
  let count = 0;
  for (const table of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, "utf8").split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; column 9 is the inode.
      if (cols.length > 9 && parseInt(cols[1]?.split(":")[1] ?? "", 16) === port && cols[3] !== "0A" && inodes.has(cols[9] ?? "")) count++;
    }
  }
  return count;
}

/** A TCP connection that sends nothing; resolves once connected with a promise of its close. */
function idleSocket(port: number): Promise<{ socket: Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    sockets.push(socket);
    const closed = new Promise<number>((r) => socket.once("close", () => r(Date.now())));
    socket.on("error", () => {});
    // Read (nothing), so that the agent's close is seen: a paused socket never reports the end.
    socket.once("connect", () => resolve({ socket: socket.resume(), closed }));
    socket.once("error", reject);
  });
}

/** An SSE stream held open; `status` is the HTTP status, `closed` resolves if the agent ends it. */
function openStream(url: string, commandId: string): Promise<{ status: number; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/api/logs/${commandId}`, { headers: auth }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, closed: new Promise((r) => res.once("close", () => r())) });
    });
    req.on("socket", (s) => sockets.push(s));
    req.once("error", reject);
    req.end();
  });
}

/** Awaits `p`, failing with the step's name when it takes longer than `ms` (a hang names itself). */
async function step<T>(name: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name}: not done after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function spawnWorld(limits: Record<string, number>) {
  const w = await makeWorld(await tempDir(), { sleepSeconds: 300, lines: 1 });
  worlds.push(w);
  const configPath = join(w.dir, "config.json");
  await writeFile(configPath, JSON.stringify(w.config));
  const child = spawnAgent(configPath, { apiLimits: limits });
  pids.push(child.pid!);
  const url = await step("agent ready", agentReady(child), 15_000);
  return { w, child, url, port: Number(new URL(url).port) };
}

describe("local API resource caps (a real daemon in its own process)", () => {
  it("300 idle connections over the cap are refused at once, the idle ones are cut, SSE streams stay and are capped, the connections never pass the cap", async () => {
    const { w, child, url, port } = await spawnWorld({ maxConnections: 40, maxStreams: 3, idleTimeoutMs: 1_000 });
    const row = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
    await w.server.waitFor(() => w.server.statuses(row.id).includes("running"), 15_000);

    // Three readers take every stream slot; a fourth is told to come back later.
    const streams = await step("three streams open", Promise.all([1, 2, 3].map(() => openStream(url, row.command_id))), 5_000);
    expect(streams.map((s) => s.status)).toEqual([200, 200, 200]);
    const refused = await fetch(`${url}/api/logs/${row.command_id}`, { headers: auth });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toEqual({ error: "too many log streams open (3); try again later" });

    // 340 idle sockets: the cap leaves room for 37 next to the 3 streams, the rest are closed at once.
    const idle = await step("340 sockets connected", Promise.all(Array.from({ length: 340 }, () => idleSocket(port))), 10_000);
    // Counted from the last connect, not the first: on a loaded machine the 340 connects alone can take seconds.
    const connected = Date.now();
    const closedAt = idle.map((s) => s.closed);
    const early = await Promise.race([Promise.all(closedAt.slice(50)), new Promise((r) => setTimeout(r, 5_000, "late"))]);
    expect(early).not.toBe("late");
    // Never more connections than the cap (40, the 3 streams included).
    expect(apiConnections(child.pid!, port)).toBeLessThanOrEqual(40);

    // Within a few seconds the idle ones inside the cap are cut too, and a new client is answered.
    const allClosed = await step("every idle socket closed", Promise.all(closedAt), 10_000);
    // The idle cut is 1 s; without it these sockets would stay open for minutes (Node's own timeouts).
    expect(Math.max(...allClosed) - connected).toBeLessThan(6_000);
    const status = await fetch(`${url}/api/status`, { headers: auth });
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ active_streams: 3 });
    // The 3 streams, and at most the kept-alive connection of the status request just made.
    expect(apiConnections(child.pid!, port)).toBeLessThanOrEqual(4);
    expect(apiConnections(child.pid!, port)).toBeGreaterThanOrEqual(3);

    // The SSE streams outlived the idle cut: they are answers in progress, not idle sockets.
    const streamClosed = await Promise.race([Promise.any(streams.map((s) => s.closed)).then(() => "closed"), new Promise((r) => setTimeout(r, 200, "open"))]);
    expect(streamClosed).toBe("open");
    process.kill(child.pid!, "SIGTERM");
    await step("agent exit after SIGTERM", new Promise((r) => child.once("exit", r)), 15_000);
    // Every step above is bounded and names itself when late; this only backs them up.
  }, 120_000);
});

describe("resolveApiLimits", () => {
  it("keeps connections to half the open-file limit and streams below the connection cap", () => {
    expect(resolveApiLimits({}, 65_536)).toEqual({ maxConnections: 1024, maxStreams: 512, idleTimeoutMs: 5_000, requestTimeoutMs: 30_000 });
    expect(resolveApiLimits({}, 1_024)).toMatchObject({ maxConnections: 512, maxStreams: 496 });
    expect(resolveApiLimits({ maxConnections: 20, maxStreams: 100 }, undefined)).toMatchObject({ maxConnections: 20, maxStreams: 4 });
    expect(resolveApiLimits({ idleTimeoutMs: 60_000 }, undefined).requestTimeoutMs).toBe(60_000);
    expect(() => resolveApiLimits({ maxConnections: 0 })).toThrow("maxConnections must be a positive integer, got 0");
  });

  it("reads this process's soft open-file limit", () => {
    const limit = openFileLimit();
    expect(limit === undefined || limit >= 64).toBe(true);
    expect(openFileLimit("/nonexistent/limits")).toBeUndefined();
  });
});
