import type { Router } from "express";
import { bearerToken, checkAgentToken, isPlainObject, methodNotAllowed, param, readJsonBody, sendError } from "./fake-http.js";
import type { FakeStore } from "./fake-store.js";

const HEARTBEAT_NUMBER_FIELDS = ["gpu_utilization_pct", "gpu_memory_used_gb", "storage_gb_free", "uptime_s"];
const HEARTBEAT_STRING_FIELDS = ["status", "current_task"];

function registrationProblem(body: Record<string, unknown>): string | null {
  for (const field of ["name", "hostname"]) {
    const value = body[field];
    if (value === undefined || value === null || value === "") return `${field} is required`;
    if (typeof value !== "string") return `${field} must be a string`;
  }
  return null;
}

function heartbeatIsValid(body: Record<string, unknown>): boolean {
  const present = (key: string): boolean => body[key] !== undefined && body[key] !== null;
  for (const key of HEARTBEAT_STRING_FIELDS) if (present(key) && typeof body[key] !== "string") return false;
  for (const key of HEARTBEAT_NUMBER_FIELDS) {
    if (present(key) && (typeof body[key] !== "number" || !Number.isFinite(body[key]))) return false;
  }
  if (present("engines") && !Array.isArray(body.engines)) return false;
  return true;
}

function intervalOf(settings: Record<string, string>): number {
  const parsed = Number.parseInt(settings.heartbeat_interval_s ?? "", 10);
  return Number.isFinite(parsed) ? parsed : 30;
}

/** Register, heartbeat, results and the agent list: the routes an agent calls with its own token. */
export function mountAgentRoutes(router: Router, store: FakeStore): void {
  router
    .route("/api/v1/agents/register")
    .post((req, res) => {
      const parsed = readJsonBody(req);
      if (parsed.kind !== "ok" || !isPlainObject(parsed.value)) return sendError(res, 400, "Invalid JSON body");
      const body = parsed.value;
      const problem = registrationProblem(body);
      if (problem !== null) return sendError(res, 400, `Invalid registration data: ${problem}`);
      const name = body.name as string;
      const token = bearerToken(req);
      let agent = store.agentByName(name);
      if (agent && agent.token !== null) {
        if (token === null) return sendError(res, 401, "Missing authorization");
        if (token !== agent.token) return sendError(res, 403, "Invalid token for this agent");
      }
      // Trust on first use: an unknown name is created and bound to whatever token came with it.
      if (!agent) agent = store.createAgent(name, token, false);
      else if (agent.token === null) agent.token = token;
      agent.registration = body;
      store.registrations.push({ agentId: agent.id, body, authorization: req.headers.authorization });
      res.status(201).json({ agent_id: agent.id, heartbeat_interval_s: intervalOf(agent.settings) });
    })
    .all(methodNotAllowed);

  router
    .route("/api/v1/agents/:id/heartbeat")
    .post((req, res) => {
      const idInPath = param(req, "id");
      const agent = store.resolveAgent(idInPath);
      if (!agent) return sendError(res, 404, "Agent not found");
      if (!checkAgentToken(req, res, agent)) return;
      const parsed = readJsonBody(req);
      if (parsed.kind === "invalid") return sendError(res, 400, "Invalid heartbeat payload");
      const body = parsed.kind === "ok" ? parsed.value : {};
      if (!isPlainObject(body) || !heartbeatIsValid(body)) return sendError(res, 400, "Invalid heartbeat payload");
      agent.lastHeartbeat = body;
      const commands = store.takeNextCommand(agent);
      store.heartbeats.push({ agentId: agent.id, idInPath, body, commands, at: Date.now() });
      res.status(200).json({ ack: true, agent_id: agent.id, commands, settings: { ...agent.settings } });
    })
    .all(methodNotAllowed);

  router
    .route("/api/v1/agents/:id/results")
    .post((req, res) => {
      const agent = store.resolveAgent(param(req, "id"));
      if (!agent) return sendError(res, 404, "Agent not found");
      if (!checkAgentToken(req, res, agent)) return;
      const parsed = readJsonBody(req);
      if (parsed.kind !== "ok" || !isPlainObject(parsed.value) || Object.keys(parsed.value).length === 0) {
        return sendError(res, 400, "No result data provided");
      }
      store.recordResult(agent, parsed.value);
      res.status(202).json({ accepted: true });
    })
    .all(methodNotAllowed);

  router
    .route("/api/v1/agents/")
    .get((_req, res) => {
      const items = [...store.agents.values()].map((agent) => ({
        id: agent.id,
        name: agent.name,
        hostname: typeof agent.registration?.hostname === "string" ? agent.registration.hostname : "",
        registered: agent.registration !== null,
      }));
      res.json({ items, total: items.length });
    })
    .all(methodNotAllowed);
}
