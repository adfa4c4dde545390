import type { Request, Response } from "express";
import type { AgentRecord } from "./fake-server-types.js";

export type JsonBody = { kind: "absent" } | { kind: "invalid" } | { kind: "ok"; value: unknown };

/**
 * The real server parses a body only when it is sent as application/json;
 * anything else is treated as if no body was sent at all.
 */
export function readJsonBody(req: Request): JsonBody {
  const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (contentType !== "application/json") return { kind: "absent" };
  const raw: unknown = req.body;
  if (!Buffer.isBuffer(raw) || raw.length === 0) return { kind: "absent" };
  try {
    return { kind: "ok", value: JSON.parse(raw.toString("utf8")) };
  } catch {
    return { kind: "invalid" };
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The token from `Authorization: Bearer <token>`; only the capitalised scheme counts, as on the real server. */
export function bearerToken(req: Request): string | null {
  const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? "");
  return match?.[1] ?? null;
}

export function sendError(res: Response, status: number, message: string): void {
  res.status(status).json({ error: message });
}

/** Agent-token check for agent-scoped routes; returns false after answering 401/403. */
export function checkAgentToken(req: Request, res: Response, agent: AgentRecord): boolean {
  if (agent.token === null) return true;
  const token = bearerToken(req);
  if (token === null) {
    sendError(res, 401, "Missing authorization");
    return false;
  }
  if (token !== agent.token) {
    sendError(res, 403, "Invalid token for this agent");
    return false;
  }
  return true;
}

/** In admin-token mode the quicktest routes take only the global admin token. */
export function checkAdminToken(req: Request, res: Response, adminToken: string | null): boolean {
  if (adminToken === null) return true;
  const token = bearerToken(req);
  if (token === null) {
    sendError(res, 401, "Missing authorization");
    return false;
  }
  if (token !== adminToken) {
    sendError(res, 403, "Invalid authentication token");
    return false;
  }
  return true;
}

/** Express 5 decodes route params already; this only narrows the type. */
export function param(req: Request, name: string): string {
  const value: unknown = req.params[name];
  return typeof value === "string" ? value : "";
}

/** Flask answers 405 for a known path with the wrong method. */
export function methodNotAllowed(_req: Request, res: Response): void {
  sendError(res, 405, "Method not allowed");
}
