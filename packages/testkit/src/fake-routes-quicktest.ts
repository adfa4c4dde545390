import type { Router } from "express";
import { checkAdminToken, isPlainObject, methodNotAllowed, param, readJsonBody, sendError } from "./fake-http.js";
import { FakeStoreError, type FakeStore, type QueueTestInput } from "./fake-store.js";

const TEST_STATUSES = new Set(["running", "completed", "failed"]);
const REQUIRED_CREATE_FIELDS = ["model_path", "engine_name", "suite_name"] as const;
const OPTIONAL_CREATE_FIELDS = ["agent_name", "agent_id", "benchmark_name", "engine_mode", "profile_id"] as const;

function createInput(body: Record<string, unknown>): QueueTestInput | string {
  for (const field of REQUIRED_CREATE_FIELDS) {
    if (typeof body[field] !== "string" || body[field] === "") return `'${field}' is required`;
  }
  for (const field of OPTIONAL_CREATE_FIELDS) {
    if (body[field] !== undefined && typeof body[field] !== "string") return `'${field}' must be a string`;
  }
  if (body.agent_name === undefined && body.agent_id === undefined) return "'agent_name' or 'agent_id' is required";
  const input: Record<string, string> = {};
  for (const field of [...REQUIRED_CREATE_FIELDS, ...OPTIONAL_CREATE_FIELDS]) {
    const value = body[field];
    if (typeof value === "string") input[field] = value;
  }
  return input as unknown as QueueTestInput;
}

/** Query integers the Flask way: a missing or unparsable value takes the default. */
function intQuery(value: unknown, fallback: number): number {
  if (typeof value !== "string" || !/^-?\d+$/.test(value)) return fallback;
  return Number.parseInt(value, 10);
}

function stringQuery(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** Quick-test routes: create, list, get one row, logs and status. */
export function mountQuicktestRoutes(router: Router, store: FakeStore, adminToken: () => string | null): void {
  router
    .route("/api/v1/quicktest/")
    .get((req, res) => {
      const perPage = Math.min(100, Math.max(1, intQuery(req.query.per_page, 20)));
      const page = Math.max(1, intQuery(req.query.page, 1));
      const all = store.listTests({ agentName: stringQuery(req.query.agent_name), status: stringQuery(req.query.status) });
      res.json({
        items: all.slice((page - 1) * perPage, page * perPage),
        total: all.length,
        page,
        pages: Math.ceil(all.length / perPage),
      });
    })
    .post((req, res) => {
      if (!checkAdminToken(req, res, adminToken())) return;
      const parsed = readJsonBody(req);
      if (parsed.kind !== "ok" || !isPlainObject(parsed.value)) return sendError(res, 400, "Invalid JSON body");
      const input = createInput(parsed.value);
      if (typeof input === "string") return sendError(res, 400, input);
      try {
        res.status(201).json(store.queueTest(input));
      } catch (error) {
        if (error instanceof FakeStoreError) return sendError(res, error.status, error.message);
        throw error;
      }
    })
    .all(methodNotAllowed);

  router
    .route("/api/v1/quicktest/:id")
    .get((req, res) => {
      const row = store.getTest(param(req, "id"));
      if (!row) return sendError(res, 404, "Quick test not found");
      res.json(row);
    })
    .all(methodNotAllowed);

  router
    .route("/api/v1/quicktest/:id/logs")
    .get((req, res) => {
      const id = param(req, "id");
      if (!store.getTest(id)) return sendError(res, 404, "Quick test not found");
      res.json({ lines: store.logLines(id) });
    })
    .post((req, res) => {
      if (!checkAdminToken(req, res, adminToken())) return;
      const id = param(req, "id");
      if (!store.getTest(id)) return sendError(res, 404, "Quick test not found");
      const parsed = readJsonBody(req);
      const line = parsed.kind === "ok" && isPlainObject(parsed.value) ? parsed.value.line : undefined;
      if (typeof line !== "string") return sendError(res, 400, "'line' is required");
      store.appendLog(id, line);
      res.json({ ok: true });
    })
    .all(methodNotAllowed);

  router
    .route("/api/v1/quicktest/:id/status")
    .post((req, res) => {
      if (!checkAdminToken(req, res, adminToken())) return;
      const id = param(req, "id");
      if (!store.getTest(id)) return sendError(res, 404, "Quick test not found");
      const parsed = readJsonBody(req);
      const body = parsed.kind === "ok" && isPlainObject(parsed.value) ? parsed.value : {};
      const status = body.status;
      if (typeof status !== "string" || !TEST_STATUSES.has(status)) {
        return sendError(res, 400, "'status' must be one of: running, completed, failed");
      }
      const error = typeof body.error === "string" ? body.error : null;
      store.setStatus(id, status, error);
      res.json({ ok: true, status });
    })
    .all(methodNotAllowed);
}
