import type { AddressInfo } from "node:net";
import { createServer, type Server, request as httpRequest } from "node:http";

import type { CommandRequest } from "@kitt/protocol";
import { LogStream } from "@kitt/runner";
import { afterEach, describe, expect, it } from "vitest";

import { createApiApp } from "./api-app.js";
import type { JobEnd, JobInfo, JobsApi, SubmitResult } from "./jobs-api.js";
import { MetricsRegistry } from "./metrics.js";

const TOKEN = "local-token-123456";

/** A real in-memory job table with real LogStreams: what the runner adapter provides. */
class TableJobs implements JobsApi {
  readonly jobs = new Map<string, { info: JobInfo; stream: LogStream<JobEnd> }>();
  readonly submitted: CommandRequest[] = [];
  containers = 0;
  activeContainers(): number {
    return this.containers;
  }
  submit(command: CommandRequest): SubmitResult {
    if (command.type !== "run_test" && command.type !== "cleanup_storage") return { ok: false, status: 400, error: `unsupported command type: ${command.type}` };
    if (this.jobs.has(command.command_id)) return { ok: false, status: 409, error: "duplicate command_id" };
    this.submitted.push(command);
    this.jobs.set(command.command_id, {
      info: { command_id: command.command_id, test_id: command.test_id, type: command.type, state: "running" },
      stream: new LogStream<JobEnd>(),
    });
    return { ok: true };
  }
  cancel(target: { commandId?: string; testId?: string }): JobInfo | undefined {
    for (const job of this.jobs.values()) {
      if (job.info.command_id === target.commandId || job.info.test_id === target.testId) {
        job.info.state = "failed";
        job.info.error = "Cancelled by user";
        job.stream.end({ status: "failed", error: "Cancelled by user" });
        return job.info;
      }
    }
    return undefined;
  }
  get(commandId: string) {
    return this.jobs.get(commandId)?.info;
  }
  findByTestId(testId: string) {
    return [...this.jobs.values()].map((j) => j.info).find((j) => j.test_id === testId);
  }
  logs(commandId: string) {
    return this.jobs.get(commandId)?.stream;
  }
  snapshot() {
    const all = [...this.jobs.values()].map((j) => j.info);
    return { running: all.filter((j) => j.state === "running"), queued: all.filter((j) => j.state === "queued") };
  }
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  for (const s of servers) s.closeAllConnections();
});

async function start(overrides: { token?: string; keepaliveMs?: number } = {}) {
  const jobs = new TableJobs();
  const registry = new MetricsRegistry();
  registry.counter("kitt_agent_jobs_total", "jobs by outcome").inc({ outcome: "completed" }, 2);
  const app = createApiApp({
    name: "gpu-node-01",
    token: overrides.token ?? TOKEN,
    jobs,
    storageUsage: async () => ({ used_gb: 1.5, free_gb: 800, model_count: 1 }),
    statusExtras: () => ({ agent_id: "abc" }),
    metrics: () => registry.render(),
    keepaliveMs: overrides.keepaliveMs ?? 15_000,
  });
  const server = createServer(app);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { jobs, url, server };
}

const auth = { authorization: `Bearer ${TOKEN}` };
const json = { ...auth, "content-type": "application/json" };
const runTest = {
  command_id: "a1b2c3d4e5f60718",
  test_id: "0f1e2d3c4b5a6978",
  type: "run_test",
  payload: { model_path: "/models/m", engine_name: "vllm", suite_name: "quick" },
};

async function post(url: string, body: unknown, headers: Record<string, string> = json) {
  const res = await fetch(`${url}/api/commands`, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Reads SSE frames from a raw HTTP response until `stop` says so. */
function readSse(url: string, headers: Record<string, string>, stop: (frames: string[]) => boolean): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      let buf = "";
      const frames: string[] = [];
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n\n")) !== -1) {
          frames.push(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
        if (stop(frames)) {
          req.destroy();
          resolve(frames);
        }
      });
      res.on("end", () => resolve(frames));
    });
    req.on("error", (err) => (err.message === "socket hang up" ? undefined : reject(err)));
    req.end();
  });
}

describe("local API: auth", () => {
  it("health and the status probe need no token; everything else needs the exact Bearer token", async () => {
    const { url } = await start();
    expect((await fetch(`${url}/api/health`)).status).toBe(200);
    expect((await fetch(`${url}/api/status`)).status).toBe(200);
    expect((await fetch(`${url}/api/status`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await fetch(`${url}/api/status`, { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(401);
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    const res = await fetch(`${url}/api/status`, { headers: auth });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      name: "gpu-node-01",
      running: false,
      active_containers: 0,
      active_streams: 0,
      storage: { used_gb: 1.5, free_gb: 800, model_count: 1 },
      jobs: { running: [], queued: [] },
      agent_id: "abc",
    });
  });

  it("GET /api/status without credentials answers exactly the original's probe fields, with true values", async () => {
    const { url, jobs } = await start();
    const probe = async (headers: Record<string, string> = {}) => {
      const res = await fetch(`${url}/api/status`, { headers });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect(await probe()).toEqual({ status: 200, body: { name: "gpu-node-01", running: false, active_containers: 0, active_streams: 0 } });
    // An empty Authorization header is no credential either.
    expect(await probe({ authorization: "" })).toEqual(await probe());
    jobs.containers = 1;
    expect((await post(url, runTest)).status).toBe(202);
    const frames = readSse(`${url}/api/logs/${runTest.command_id}`, auth, (f) => f.some((x) => x.includes("a line")));
    await expect.poll(async () => (await probe()).body.active_streams, { timeout: 5000 }).toBe(1);
    expect(await probe()).toEqual({ status: 200, body: { name: "gpu-node-01", running: true, active_containers: 1, active_streams: 1 } });
    jobs.logs(runTest.command_id)?.append("a line");
    await frames;
    // A client that sends a token expects the full body: a wrong one is refused, not downgraded.
    expect(await probe({ authorization: "Bearer wrong" })).toEqual({ status: 401, body: { error: "Invalid token" } });
    expect(await probe({ authorization: TOKEN })).toEqual({ status: 401, body: { error: "Invalid token" } });
    const full = await probe(auth);
    expect(full.status).toBe(200);
    expect(Object.keys(full.body)).toEqual(expect.arrayContaining(["storage", "jobs", "agent_id"]));
  });

  it.each([
    ["GET", "/metrics"],
    ["GET", "/api/logs/a1b2c3d4e5f60718"],
    ["POST", "/api/commands"],
    ["POST", "/api/status"],
    ["PUT", "/api/status"],
    ["GET", "/api/engines"],
    ["GET", "/api/nothing-here"],
  ])("without a token, %s %s is 401", async (method, path) => {
    const { url, jobs } = await start();
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { "content-type": "application/json" },
      ...(method === "GET" ? {} : { body: JSON.stringify(runTest) }),
    });
    expect(res.status).toBe(401);
    expect(jobs.submitted).toEqual([]);
  });

  it("with no token configured, serves loopback clients", async () => {
    const { url } = await start({ token: "" });
    expect((await fetch(`${url}/api/status`)).status).toBe(200);
  });
});

describe("local API: POST /api/commands", () => {
  it("accepts a run_test asynchronously", async () => {
    const { url, jobs } = await start();
    expect(await post(url, runTest)).toEqual({ status: 202, body: { accepted: true, command_id: runTest.command_id } });
    expect(jobs.submitted).toHaveLength(1);
    const status = (await (await fetch(`${url}/api/status`, { headers: auth })).json()) as { running: boolean };
    expect(status.running).toBe(true);
  });

  it.each([
    ["broken JSON", "{not json", 400, "body is not valid JSON"],
    ["an array", "[1,2]", 400, "body must be a JSON object sent with Content-Type: application/json"],
    ["a missing type", { command_id: "a", payload: {} }, 400, "invalid command request: type is required"],
    ["a traversal id", { ...runTest, command_id: "x/../../dir" }, 400, "invalid command request: command_id must match pattern"],
    ["a wrong type", { ...runTest, payload: "x" }, 400, "invalid command request: payload must be object"],
    ["an unknown field", { ...runTest, extra: 1 }, 400, "invalid command request: extra is not allowed"],
    ["an unsupported type", { ...runTest, type: "run_container" }, 400, "unsupported command type: run_container"],
  ])("refuses %s", async (_what, body, status, message) => {
    const { url, jobs } = await start();
    const res = await post(url, body);
    expect(res.status).toBe(status);
    expect(String(res.body.error)).toContain(message);
    expect(jobs.submitted).toHaveLength(0);
  });

  it("refuses a body that is not JSON by content type", async () => {
    const { url } = await start();
    const res = await post(url, JSON.stringify(runTest), { ...auth, "content-type": "text/plain" });
    expect(res.status).toBe(400);
  });

  it("answers 413 to a 10 MB body and keeps serving", async () => {
    const { url } = await start();
    const big = JSON.stringify({ ...runTest, payload: { model_path: "x".repeat(10 * 1024 * 1024) } });
    const res = await fetch(`${url}/api/commands`, { method: "POST", headers: json, body: big });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: "request body too large" });
    expect((await fetch(`${url}/api/health`)).status).toBe(200);
  });

  it("cancels by command id or test id, 404 for unknown jobs", async () => {
    const { url } = await start();
    await post(url, runTest);
    expect((await post(url, { command_id: "c1", type: "cancel", payload: { command_id: "nope" } })).status).toBe(404);
    const res = await post(url, { command_id: "cancel-1", type: "cancel", payload: { test_id: runTest.test_id } });
    expect(res).toEqual({ status: 202, body: { accepted: true, command_id: "cancel-1", cancelled: runTest.command_id, state: "failed" } });
    expect((await post(url, { command_id: "c2", type: "cancel", payload: {} })).status).toBe(400);
    expect((await post(url, { command_id: "c3", type: "cancel", payload: { test_id: "../x" } })).status).toBe(400);
  });

  it("reports a job's status", async () => {
    const { url } = await start();
    await post(url, runTest);
    const res = await post(url, { command_id: "s1", type: "status", payload: { command_id: runTest.command_id } });
    expect(res).toEqual({ status: 200, body: { command_id: runTest.command_id, test_id: runTest.test_id, type: "run_test", state: "running" } });
    expect(await post(url, { command_id: "s2", type: "status", payload: { test_id: runTest.test_id } })).toEqual(res);
    expect((await post(url, { command_id: "s3", type: "status", payload: { test_id: "nope" } })).status).toBe(404);
  });

  it("unknown routes are JSON 404s", async () => {
    const { url } = await start();
    const res = await fetch(`${url}/api/nope`, { headers: auth });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "not found" });
  });
});

describe("local API: SSE logs", () => {
  it("sends buffered lines then live ones, then the end event", async () => {
    const { url, jobs } = await start();
    await post(url, runTest);
    const stream = jobs.logs(runTest.command_id)!;
    stream.append("first");
    stream.append("second");
    const done = readSse(`${url}/api/logs/${runTest.command_id}`, auth, (f) => f.some((x) => x.includes("event: end")));
    await new Promise((r) => setTimeout(r, 50));
    stream.append("third");
    stream.end({ status: "completed" });
    const frames = (await done).filter((f) => !f.startsWith("retry:"));
    expect(frames).toEqual([
      `id: 1\nevent: log\ndata: {"command_id":"${runTest.command_id}","line":"first"}`,
      `id: 2\nevent: log\ndata: {"command_id":"${runTest.command_id}","line":"second"}`,
      `id: 3\nevent: log\ndata: {"command_id":"${runTest.command_id}","line":"third"}`,
      `event: end\ndata: {"command_id":"${runTest.command_id}","status":"completed"}`,
    ]);
  });

  it("resumes after Last-Event-ID without repeating lines", async () => {
    const { url, jobs } = await start();
    await post(url, runTest);
    const stream = jobs.logs(runTest.command_id)!;
    for (let i = 1; i <= 5; i++) stream.append(`l${i}`);
    stream.end({ status: "failed", error: "Exit 3" });
    const frames = await readSse(`${url}/api/logs/${runTest.command_id}`, { ...auth, "last-event-id": "3" }, () => false);
    const ids = frames.filter((f) => f.startsWith("id:")).map((f) => f.split("\n")[0]);
    expect(ids).toEqual(["id: 4", "id: 5"]);
    expect(frames.at(-1)).toContain('"error":"Exit 3"');
  });

  it("sends keepalive comments while idle and counts active streams", async () => {
    const { url } = await start({ keepaliveMs: 20 });
    await post(url, runTest);
    const reading = readSse(`${url}/api/logs/${runTest.command_id}`, auth, (f) => f.filter((x) => x === ": keepalive").length >= 3);
    let during = 0;
    for (let i = 0; i < 50 && during === 0; i++) {
      during = ((await (await fetch(`${url}/api/status`, { headers: auth })).json()) as { active_streams: number }).active_streams;
    }
    expect(during).toBe(1);
    const frames = await reading;
    expect(frames.filter((x) => x === ": keepalive").length).toBeGreaterThanOrEqual(3);
    let after = 1;
    for (let i = 0; i < 50 && after !== 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      after = ((await (await fetch(`${url}/api/status`, { headers: auth })).json()) as { active_streams: number }).active_streams;
    }
    expect(after).toBe(0);
  });

  it("404 for an unknown job, 400 for a bad id, 401 without token", async () => {
    const { url } = await start();
    expect((await fetch(`${url}/api/logs/unknown`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${url}/api/logs/a.b`, { headers: auth })).status).toBe(400);
    expect((await fetch(`${url}/api/logs/unknown`)).status).toBe(401);
  });
});

describe("local API: /metrics", () => {
  it("serves Prometheus text", async () => {
    const { url } = await start();
    const res = await fetch(`${url}/metrics`, { headers: auth });
    expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
    expect(await res.text()).toBe('# HELP kitt_agent_jobs_total jobs by outcome\n# TYPE kitt_agent_jobs_total counter\nkitt_agent_jobs_total{outcome="completed"} 2\n');
  });
});
