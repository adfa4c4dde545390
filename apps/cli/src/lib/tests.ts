import { createHash } from "node:crypto";

import type { AgentConfig, KittServerClient, TestListItem, TestRow } from "@kitt/protocol";
import { KittError, UsageError } from "@kitt/protocol";

import { daemonRequest, DaemonNotRunningError, errorText, type DaemonConfig } from "./daemon-client.js";

export const TERMINAL_STATUSES = new Set(["completed", "failed"]);

/** Tests of this agent, newest first, as the server lists them. */
export async function listAgentTests(
  client: KittServerClient,
  agentName: string,
  query: { status?: string | undefined; limit: number },
): Promise<{ items: TestListItem[]; total: number }> {
  const list = await client.listTests({
    agentName,
    perPage: query.limit,
    ...(query.status === undefined ? {} : { status: query.status }),
  });
  return { items: list.items, total: list.total };
}

export type StepOutcome = "done" | "skipped" | "failed";

export interface StopStep {
  step: string;
  outcome: StepOutcome;
  detail: string;
}

export interface StopReport {
  testId: string;
  steps: StopStep[];
  /** True when every step that had to happen did. */
  ok: boolean;
}

/** Test ids (and the daemon's command ids): what the daemon accepts, 1-64 letters, digits, '_' or '-'. */
const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_COMMAND_ID = 64;

/**
 * The command id of the daemon cancel for `testId`: `cancel-<id>` when that
 * fits the daemon's 64 characters, else a prefix of the id plus a hash of all
 * of it, so two long ids that share a prefix still get different commands.
 */
export function cancelCommandId(testId: string): string {
  const plain = `cancel-${testId}`;
  if (plain.length <= MAX_COMMAND_ID) return plain;
  const hash = createHash("sha256").update(testId).digest("hex").slice(0, 16);
  return `cancel-${testId.slice(0, MAX_COMMAND_ID - "cancel-".length - hash.length - 1)}-${hash}`;
}

/**
 * The agent id the server uses for `agentName`, learned from the agent's own
 * test list (a test row names its agent by id only).
 */
async function agentIdOf(client: KittServerClient, agentName: string): Promise<string | undefined> {
  const list = await client.listTests({ agentName, perPage: 1 });
  return list.items[0]?.agent_id ?? undefined;
}

/**
 * Stops a test of this agent: fetch it; refuse another agent's test; nothing
 * to do when it already ended; mark it failed ("Cancelled by user") on the
 * server; then ask the local daemon to cancel the job so the benchmark really
 * stops. Every step is reported; a daemon that is not running is said so.
 */
export async function stopTest(
  client: KittServerClient,
  config: Pick<AgentConfig, "name"> & DaemonConfig,
  testId: string,
): Promise<StopReport> {
  if (!SAFE_ID.test(testId)) throw new UsageError(`invalid test id ${JSON.stringify(testId.slice(0, 80))}: expected 1-64 letters, digits, '_' or '-'`);
  const steps: StopStep[] = [];
  const report = (ok: boolean): StopReport => ({ testId, steps, ok });

  let row: TestRow;
  try {
    row = await client.getTest(testId);
  } catch (err) {
    if ((err as { status?: number }).status === 404) throw new KittError(`test ${testId} not found on the server`, { code: "NOT_FOUND", cause: err });
    throw err;
  }
  const ours = await agentIdOf(client, config.name);
  if (row.agent_id === null || ours === undefined || row.agent_id !== ours) {
    throw new UsageError(`test ${testId} does not belong to agent ${config.name}: refusing to stop it`);
  }
  steps.push({ step: "fetch", outcome: "done", detail: `test ${testId} (${row.model_path}, ${row.engine_name}) is ${row.status}` });
  if (TERMINAL_STATUSES.has(row.status)) {
    steps.push({ step: "server", outcome: "skipped", detail: `already ${row.status}: nothing to do` });
    return report(true);
  }

  let ok = true;
  try {
    await client.postStatus(testId, { status: "failed", error: "Cancelled by user" });
    steps.push({ step: "server", outcome: "done", detail: "marked failed (Cancelled by user)" });
  } catch (err) {
    ok = false;
    steps.push({ step: "server", outcome: "failed", detail: (err as Error).message });
  }

  try {
    const res = await daemonRequest(config, "POST", "/api/commands", {
      body: { command_id: cancelCommandId(testId), type: "cancel", payload: { test_id: testId } },
    });
    if (res.status >= 200 && res.status < 300) {
      const state = (res.body as { state?: unknown }).state;
      steps.push({ step: "daemon", outcome: "done", detail: `cancel accepted${typeof state === "string" ? ` (job ${state})` : ""}` });
    } else if (res.status === 404) {
      steps.push({ step: "daemon", outcome: "skipped", detail: "the daemon has no job for this test" });
    } else {
      ok = false;
      steps.push({ step: "daemon", outcome: "failed", detail: `HTTP ${res.status}: ${errorText(res.body)}` });
    }
  } catch (err) {
    if (err instanceof DaemonNotRunningError) {
      steps.push({ step: "daemon", outcome: "skipped", detail: `${err.message}: no local job to cancel` });
    } else {
      ok = false;
      steps.push({ step: "daemon", outcome: "failed", detail: (err as Error).message });
    }
  }
  return report(ok);
}
