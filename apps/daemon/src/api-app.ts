import type { RequestListener } from "node:http";

import {
  COMMAND_LIMITS,
  type CommandRequest,
  type Logger,
  ProtocolError,
  isSafeId,
  parseCommandRequest,
  silentLogger,
} from "@kitt/protocol";

import { bearerAuth, isProbe } from "./auth.js";
import { HttpApp, sendError, sendJson, sendText } from "./http-app.js";
import type { JobInfo, JobsApi } from "./jobs-api.js";
import { streamLogs } from "./sse.js";

export interface StorageUsage {
  used_gb: number;
  free_gb: number;
  model_count: number;
}

export interface ApiDeps {
  name: string;
  token: string;
  jobs: JobsApi;
  storageUsage(): Promise<StorageUsage>;
  /** Extra fields for /api/status (heartbeat state, agent id, version...). */
  statusExtras?(): Record<string, unknown>;
  /** Prometheus text for /metrics. */
  metrics(): Promise<string> | string;
  logger?: Logger;
  /** Largest accepted JSON body (default 1 MiB). */
  bodyLimitBytes?: number;
  /** Deepest nesting of a JSON body (default: what a heartbeat command may have, 32). */
  maxBodyDepth?: number;
  /** SSE keepalive comment period (default 15 s). */
  keepaliveMs?: number;
  /** Concurrent SSE log streams; more are answered 503 (default 512). */
  maxStreams?: number;
  /** False while shutting down: new jobs are refused with 503. */
  accepting?(): boolean;
  /** GET /api/engines: every native engine's status, probed now (none: the route is a 404). */
  engines?(): Promise<object[]>;
  /**
   * POST /api/drain (`kitt-agent stop --drain`): stop taking jobs, let the
   * accepted ones finish, then stop. Undefined while the agent is still
   * starting (answered 503). Without this dependency the route is a 404.
   */
  drain?(): object | undefined;
}

const CANCEL_TYPES = new Set(["cancel", "stop"]);

/** Reads `payload.command_id` / `payload.test_id` for cancel and status requests. */
function targetOf(cmd: CommandRequest): { commandId?: string; testId?: string } | string {
  const p = cmd.payload;
  const commandId = p.command_id;
  const testId = p.test_id;
  if (commandId === undefined && testId === undefined) return "payload.command_id or payload.test_id is required";
  if (commandId !== undefined && !isSafeId(commandId)) return "payload.command_id must be 1-64 letters, digits, '_' or '-'";
  if (testId !== undefined && !isSafeId(testId)) return "payload.test_id must be 1-64 letters, digits, '_' or '-'";
  return { ...(commandId !== undefined ? { commandId: commandId as string } : {}), ...(testId !== undefined ? { testId: testId as string } : {}) };
}

/**
 * The agent's own HTTP API (kitt-protocol.md section 3), compatible with the
 * original agent's routes, plus /api/health and /metrics.
 */
export function createApiApp(deps: ApiDeps): RequestListener {
  const logger = deps.logger ?? silentLogger;
  const app = new HttpApp({ bodyLimitBytes: deps.bodyLimitBytes ?? 1024 * 1024, maxBodyDepth: deps.maxBodyDepth ?? COMMAND_LIMITS.maxDepth, logger });
  let activeStreams = 0;

  // Before the token check: the health check needs no credentials.
  app.preGet("/api/health", (_req, res) => {
    sendJson(res, 200, { status: "ok" });
    return true;
  });

  /** What the original agent answered on /api/status: true values, nothing private. */
  const probe = () => ({
    name: deps.name,
    running: deps.jobs.snapshot().running.length > 0,
    active_containers: deps.jobs.activeContainers?.() ?? 0,
    active_streams: activeStreams,
  });

  // The original agent answered /api/status without a token, and the server's
  // `kitt agent status` and the original CLI probe it so: a request that sends
  // no credentials gets exactly the probe fields. One that sends a token goes
  // through the check below (a wrong one is a 401) and gets the full body.
  app.preGet("/api/status", (req, res) => {
    if (!isProbe(req, deps.token)) return false;
    sendJson(res, 200, probe());
    return true;
  });

  app.guard(bearerAuth(deps.token));

  app.post("/api/commands", async (req, res) => {
    if (!req.isJson || req.body === undefined || req.body === null || typeof req.body !== "object" || Array.isArray(req.body)) {
      sendError(res, 400, "body must be a JSON object sent with Content-Type: application/json");
      return;
    }
    let cmd: CommandRequest;
    try {
      cmd = parseCommandRequest(req.body);
    } catch (err) {
      sendError(res, 400, err instanceof ProtocolError ? err.message : "invalid command");
      return;
    }
    if (CANCEL_TYPES.has(cmd.type) || cmd.type === "status") {
      const target = targetOf(cmd);
      if (typeof target === "string") {
        sendError(res, 400, target);
        return;
      }
      if (cmd.type === "status") {
        const job =
          target.commandId !== undefined
            ? deps.jobs.get(target.commandId)
            : deps.jobs.findByTestId?.(target.testId as string);
        if (job === undefined) sendError(res, 404, "no such job");
        else sendJson(res, 200, job);
        return;
      }
      const job: JobInfo | undefined = await deps.jobs.cancel(target);
      if (job === undefined) {
        sendError(res, 404, "no such job");
        return;
      }
      logger.info(`cancel requested for ${job.command_id} (test ${job.test_id})`);
      sendJson(res, 202, { accepted: true, command_id: cmd.command_id, cancelled: job.command_id, state: job.state });
      return;
    }
    if (deps.accepting !== undefined && !deps.accepting()) {
      sendError(res, 503, "agent is shutting down");
      return;
    }
    const result = await deps.jobs.submit(cmd);
    if (!result.ok) {
      sendError(res, result.status, result.error);
      return;
    }
    if (result.body !== undefined) {
      sendJson(res, 200, result.body);
      return;
    }
    sendJson(res, 202, { accepted: true, command_id: cmd.command_id });
  });

  if (deps.drain !== undefined) {
    const drain = deps.drain;
    app.post("/api/drain", (_req, res) => {
      const started = drain();
      if (started === undefined) {
        sendError(res, 503, "the agent is still starting; try again in a moment");
        return;
      }
      logger.info("drain requested");
      sendJson(res, 202, started);
    });
  }

  if (deps.engines !== undefined) {
    const engines = deps.engines;
    app.get("/api/engines", async (_req, res) => {
      sendJson(res, 200, { engines: await engines() });
    });
  }

  app.get("/api/logs/:commandId", async (req, res) => {
    const commandId = req.params.commandId ?? "";
    if (!isSafeId(commandId)) {
      sendError(res, 400, "command id must be 1-64 letters, digits, '_' or '-'");
      return;
    }
    const maxStreams = deps.maxStreams ?? 512;
    if (activeStreams >= maxStreams) {
      res.setHeader("Retry-After", "5");
      sendError(res, 503, `too many log streams open (${maxStreams}); try again later`);
      return;
    }
    await streamLogs(req, res, deps.jobs, commandId, {
      keepaliveMs: deps.keepaliveMs ?? 15_000,
      onOpen: () => activeStreams++,
      onClose: () => activeStreams--,
    });
  });

  app.get("/api/status", async (_req, res) => {
    const jobs = deps.jobs.snapshot();
    let storage: StorageUsage;
    try {
      storage = await deps.storageUsage();
    } catch (err) {
      logger.warn(`storage usage unavailable: ${(err as Error).message}`);
      storage = { used_gb: 0, free_gb: 0, model_count: 0 };
    }
    sendJson(res, 200, {
      ...probe(),
      storage,
      jobs,
      ...(deps.statusExtras?.() ?? {}),
    });
  });

  app.get("/metrics", async (_req, res) => {
    sendText(res, 200, "text/plain; version=0.0.4; charset=utf-8", await deps.metrics());
  });
  return app.listener();
}
