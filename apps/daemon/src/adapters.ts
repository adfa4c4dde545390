/**
 * Glue between the libraries: @kitt/storage as the runner's ModelResolver,
 * and @kitt/runner's JobRunner as the local API's JobsApi.
 */
import type { CommandRequest } from "@kitt/protocol";
import { isSafeId, parseServerCommand } from "@kitt/protocol";
import type { JobInfo as RunnerJobInfo, JobRunner, ModelResolver } from "@kitt/runner";
import { formatSize, type ModelStore } from "@kitt/storage";

import { EngineError, isNativeEngine } from "@kitt/engines";

import type { EngineCatalog } from "./engines.js";
import type { JobEnd, JobInfo, JobsApi, SubmitResult } from "./jobs-api.js";


export function storageResolver(store: ModelStore, onStagedBytes: (bytes: number) => void = () => {}): ModelResolver {
  return {
    async resolve(modelPath, { onLog, signal }) {
      let seen = 0;
      const model = await store.resolve(modelPath, {
        onLog,
        signal,
        onProgress: (p) => {
          if (p.bytesDone > seen) onStagedBytes(p.bytesDone - seen);
          seen = p.bytesDone;
        },
      });
      // Paths used in place and registry names were not staged: auto_cleanup leaves them alone.
      return { localPath: model.path, release: () => model.release(), staged: model.how !== "as-is" && model.how !== "registry" };
    },
    async evict(modelPath, { onLog, localPath }) {
      const local = localPath ?? (await store.findStaged(modelPath));
      if (local === undefined) {
        onLog(`No staged copy of ${modelPath} to remove`);
        return;
      }
      const { removed, freed_bytes } = await store.cleanup(local);
      onLog(`Removed staged model ${removed} (${formatSize(freed_bytes)} freed)`);
    },
    async cleanupAll({ onLog }) {
      const r = await store.cleanupAll();
      onLog(`Removed ${r.removed.length} staged model(s), ${formatSize(r.freed_bytes)} freed`);
      for (const p of r.in_use) onLog(`Kept ${p}: a running job uses it`);
      for (const f of r.failed) onLog(`Could not remove ${f}`);
      if (r.failed.length > 0) throw new Error(`could not remove ${r.failed.length} staged model(s)`);
    },
  };
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

export function toApiJob(info: RunnerJobInfo): JobInfo {
  const out: JobInfo = { command_id: info.commandId, test_id: info.testId, type: info.type, state: info.state };
  if (info.outcome?.error !== undefined) out.error = info.outcome.error;
  const created = iso(info.queuedAt);
  const started = iso(info.startedAt);
  const finished = iso(info.endedAt);
  if (created !== undefined) out.created_at = created;
  if (started !== undefined) out.started_at = started;
  if (finished !== undefined) out.finished_at = finished;
  return out;
}

/** The local API's view of the JobRunner. */
export function runnerJobsApi(runner: JobRunner, engines?: EngineCatalog): JobsApi {
  // A command id, or a test id: its latest job (a test id is what the server's pages show).
  const logsCommandId = (id: string): string | undefined =>
    runner.job(id) !== undefined ? id : runner.list().filter((j) => j.testId === id).at(-1)?.commandId;
  return {
    async submit(command: CommandRequest): Promise<SubmitResult> {
      // Answered on the call, as by the original agent (no job, no report).
      if (command.type === "stop_container") {
        const target = (command.payload as Record<string, unknown>).command_id;
        if (!isSafeId(target)) return { ok: false, status: 400, error: "payload.command_id must name a run_container command" };
        return runner.stopContainer(target) ? { ok: true, body: { stopped: true } } : { ok: false, status: 404, error: "No active container for this command" };
      }
      if (command.type === "check_docker") {
        const answer = await runner.checkDocker();
        return { ok: true, body: answer };
      }
      if ((command.type === "engine_status" || command.type === "stop_engine") && engines !== undefined) {
        return engineQuery(engines, command.type, (command.payload as Record<string, unknown>).engine_name);
      }
      const parsed = parseServerCommand(command);
      const result = runner.submit(parsed);
      // Acknowledged only once the job is on disk: a crash after the 202 cannot lose it.
      const durable = await result.persisted.then(
        () => undefined,
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
      if (result.accepted && durable !== undefined) {
        runner.cancel(result.job.commandId, "the agent could not record the job on disk");
        return { ok: false, status: 503, error: `cannot record the job on disk: ${durable}` };
      }
      if (result.accepted) return { ok: true };
      // Refused: the runner already reported it failed to the server when it had a test id.
      const status = /already received/.test(result.error) ? 409 : /queue is full|shutting down/.test(result.error) ? 503 : 400;
      return { ok: false, status, error: result.error };
    },
    cancel(target) {
      const id = target.commandId ?? target.testId;
      if (id === undefined || !runner.cancel(id)) return undefined;
      const job = runner.job(id) ?? runner.list().find((j) => j.testId === id && j.state !== "completed");
      return job === undefined ? undefined : toApiJob("info" in job ? job.info() : job);
    },
    get(commandId) {
      const job = runner.job(commandId);
      return job === undefined ? undefined : toApiJob(job.info());
    },
    findByTestId(testId) {
      const matches = runner.list().filter((j) => j.testId === testId);
      const last = matches.at(-1);
      return last === undefined ? undefined : toApiJob(last);
    },
    logs(id) {
      const commandId = logsCommandId(id);
      return commandId === undefined ? undefined : runner.job(commandId)?.logs;
    },
    logsCommandId,
    activeContainers: () => runner.activeContainers,
    snapshot() {
      const all = runner.list().map(toApiJob);
      return { running: all.filter((j) => j.state === "running"), queued: all.filter((j) => j.state === "queued") };
    },
  };
}

export type { JobEnd };

/** engine_status and stop_engine on the local API: answered on the call, as by the original agent. */
async function engineQuery(engines: EngineCatalog, type: "engine_status" | "stop_engine", name: unknown): Promise<SubmitResult> {
  if (type === "engine_status" && (name === undefined || name === null || name === "")) return { ok: true, body: { engines: await engines.statusAll() } };
  if (typeof name !== "string" || !isNativeEngine(name)) {
    return { ok: false, status: 400, error: `payload.engine_name must be one of ollama, llama_cpp, vllm, got ${JSON.stringify(name) ?? "nothing"}` };
  }
  const driver = engines.driver(name);
  if (type === "engine_status") return { ok: true, body: { ...(await driver.status()) } };
  try {
    const stopped = await driver.stop();
    return { ok: true, body: { success: true, error: "", pid: stopped.pid, stopped_by: stopped.stopped_by } };
  } catch (err) {
    if (err instanceof EngineError) return { ok: true, body: { success: false, error: err.message } };
    throw err;
  }
}
