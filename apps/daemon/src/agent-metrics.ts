import type { GpuSnapshot } from "@kitt/hardware";
import type { HeartbeatState } from "@kitt/heartbeat";
import type { EngineStatus, StatusUpdate } from "@kitt/protocol";
import type { JobRunner, OutboxState, ReportRef, Reporter } from "@kitt/runner";

import { MetricsRegistry } from "./metrics.js";

export interface AgentMetricsSources {
  runner: Pick<JobRunner, "runningCount" | "queuedCount">;
  heartbeat: () => Pick<HeartbeatState, "successes" | "failures" | "lastSuccessAt" | "consecutiveFailures">;
  gpus: () => GpuSnapshot;
  /** Status updates and results waiting for the server (the reporter's `outboxState()`). */
  outbox?: () => OutboxState;
  /** The native engines' cached probes (undefined until the first probe ends). */
  engines?: () => EngineStatus[] | undefined;
  now?: () => number;
}

/**
 * The agent's Prometheus series. Job outcomes and durations are counted as
 * statuses pass through the reporter (wrap it with `observe`); everything
 * else is read at scrape time.
 */
export function agentMetrics(src: AgentMetricsSources) {
  const now = src.now ?? Date.now;
  const registry = new MetricsRegistry();
  const started = now();
  const jobs = registry.counter("kitt_agent_jobs_total", "Jobs finished, by outcome.");
  const duration = registry.histogram("kitt_agent_job_duration_seconds", "Wall time of finished jobs, from running to the final status.", [
    10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200,
  ]);
  const staged = registry.counter("kitt_agent_staging_bytes_total", "Bytes copied from the model share to local storage.");
  const startedAt = new Map<string, number>();

  registry.gauge("kitt_agent_uptime_seconds", "Seconds since the agent started.", () => [{ value: (now() - started) / 1000 }]);
  registry.gauge("kitt_agent_jobs_running", "Jobs running now.", () => [{ value: src.runner.runningCount }]);
  registry.gauge("kitt_agent_jobs_queued", "Jobs waiting behind the running one.", () => [{ value: src.runner.queuedCount }]);
  registry.computedCounter("kitt_agent_heartbeats_total", "Heartbeats by result since start.", () => {
    const s = src.heartbeat();
    return [
      { labels: { result: "success" }, value: s.successes },
      { labels: { result: "failure" }, value: s.failures },
    ];
  });
  registry.gauge("kitt_agent_heartbeat_age_seconds", "Seconds since the last acknowledged heartbeat (-1: none yet).", () => {
    const last = src.heartbeat().lastSuccessAt;
    return [{ value: last === null ? -1 : (now() - last) / 1000 }];
  });
  registry.gauge("kitt_agent_heartbeat_consecutive_failures", "Heartbeats failed in a row.", () => [{ value: src.heartbeat().consecutiveFailures }]);
  if (src.outbox !== undefined) {
    const outbox = src.outbox;
    registry.gauge("kitt_agent_outbox_pending", "Status updates and results not yet acknowledged by the server.", () => [{ value: outbox().pending }]);
    registry.gauge("kitt_agent_outbox_in_memory", "Of those, the ones the disk refused: kept in memory only until written or delivered.", () => [
      { value: outbox().in_memory },
    ]);
    registry.gauge("kitt_agent_state_disk_error", "1 while the state dir's disk refuses the outbox's or log spool's writes (e.g. full), else 0.", () => [
      { value: outbox().disk_error === null ? 0 : 1 },
    ]);
  }
  if (src.engines !== undefined) {
    const engines = src.engines;
    const perEngine = (pick: (e: EngineStatus) => boolean) => () => (engines() ?? []).map((e) => ({ labels: { engine: e.engine }, value: pick(e) ? 1 : 0 }));
    registry.gauge("kitt_agent_engine_installed", "1 when the native engine is installed (last probe, at most a minute old), else 0.", perEngine((e) => e.installed));
    registry.gauge("kitt_agent_engine_running", "1 when the native engine is running (last probe, at most a minute old), else 0.", perEngine((e) => e.running));
  }
  const perGpu = (pick: (g: GpuSnapshot["gpus"][number]) => number | undefined) => () =>
    src.gpus().gpus.flatMap((g) => {
      const v = pick(g);
      return v === undefined ? [] : [{ labels: { gpu: String(g.index), name: g.name, uuid: g.uuid }, value: v }];
    });
  registry.gauge("kitt_agent_gpu_utilization_percent", "GPU utilization.", perGpu((g) => g.utilization_pct));
  registry.gauge("kitt_agent_gpu_memory_used_bytes", "GPU memory in use.", perGpu((g) => (g.memory_used_gb === undefined ? undefined : g.memory_used_gb * 1024 ** 3)));
  registry.gauge("kitt_agent_gpu_memory_total_bytes", "GPU memory in all.", perGpu((g) => (g.memory_total_gb === undefined ? undefined : g.memory_total_gb * 1024 ** 3)));
  registry.gauge("kitt_agent_gpu_temperature_celsius", "GPU temperature.", perGpu((g) => g.temperature_c));
  registry.gauge("kitt_agent_gpu_power_watts", "GPU power draw.", perGpu((g) => g.power_w));

  return {
    render: () => registry.render(),
    stagedBytes: (bytes: number) => staged.inc({}, bytes),
    /** A Reporter that counts outcomes and durations on the way through. */
    observe(inner: Reporter): Reporter {
      // Everything else of the reporter (job streams, message keys, holds, deferred delivery) passes through.
      return {
        status: (testId: string, update: StatusUpdate, ref?: ReportRef) => {
          const key = ref?.job ?? testId;
          if (update.status === "running") startedAt.set(key, now());
          else {
            jobs.inc({ outcome: update.status });
            const t0 = startedAt.get(key);
            if (t0 !== undefined) duration.observe((now() - t0) / 1000);
            startedAt.delete(key);
          }
          return inner.status(testId, update, ref);
        },
        log: (testId, line, job) => inner.log(testId, line, job),
        result: (testId, report, ref) => inner.result(testId, report, ref),
        ...(inner.hold !== undefined ? { hold: (keys: readonly string[]) => inner.hold?.(keys) } : {}),
        ...(inner.release !== undefined ? { release: (keys: readonly string[]) => inner.release?.(keys) } : {}),
        ...(inner.hasPending !== undefined ? { hasPending: (key: string) => inner.hasPending?.(key) === true } : {}),
        ...(inner.startDelivery !== undefined ? { startDelivery: () => inner.startDelivery?.() } : {}),
      };
    },
  };
}
