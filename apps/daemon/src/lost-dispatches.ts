import type { KittServerClient, Logger } from "@kitt/protocol";
import type { JobRunner } from "@kitt/runner";

export const LOST_DISPATCH_REASON = "The agent went down after the server dispatched this job and before it recorded it; queue it again";

/**
 * At start, before the first heartbeat: the server's rows for this agent
 * still `dispatched` whose command no run of the agent ever recorded were
 * lost in the few milliseconds between a heartbeat's answer and the
 * journal's fsync when an agent died there. They would stay `dispatched`
 * forever; each is reported failed, once. Bounded (pages of 100, at most
 * `maxRows`); a server that refuses the listing (an admin-token server) or
 * fails is logged and skipped. Returns how many were reported.
 */
export async function reportLostDispatches(opts: {
  client: Pick<KittServerClient, "listTests">;
  agentName: string;
  runner: Pick<JobRunner, "knows" | "reportLost">;
  logger: Logger;
  maxRows?: number;
  timeoutMs?: number;
}): Promise<number> {
  const max = opts.maxRows ?? 1000;
  let reported = 0;
  let seen = 0;
  try {
    for (let page = 1; seen < max; page++) {
      const list = await opts.client.listTests({ agentName: opts.agentName, status: "dispatched", perPage: 100, page }, { retries: 0, timeoutMs: opts.timeoutMs ?? 5000 });
      for (const row of list.items) {
        seen++;
        if (row.status !== "dispatched" || typeof row.command_id !== "string" || opts.runner.knows(row.command_id)) continue;
        const type = row.benchmark_name === "cleanup_storage" ? "cleanup_storage" : "run_test";
        if (await opts.runner.reportLost({ command_id: row.command_id, test_id: row.id, type }, LOST_DISPATCH_REASON)) reported++;
      }
      if (page >= list.pages || list.items.length === 0) break;
    }
  } catch (err) {
    opts.logger.info(`could not look for jobs lost in a crash (${err instanceof Error ? err.message : String(err)}); skipped`);
  }
  return reported;
}
