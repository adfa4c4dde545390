import type { CleanupSpec } from "./command-validation.js";
import { errorText, type Job } from "./job.js";
import type { JobOutcome, ModelResolver } from "./job-types.js";

/**
 * A cleanup_storage job: one model (`evict`) or everything (`cleanupAll`).
 * Refused while a benchmark could be using what it would remove; cleanup
 * jobs go through the same queue as benchmarks, so with one job at a time
 * this only matters when `maxConcurrent` is raised.
 */
export async function runCleanupJob(
  job: Job,
  spec: CleanupSpec,
  resolver: ModelResolver,
  running: ReadonlySet<Job>,
  modelInUse: (modelPath: string, except: Job) => boolean,
): Promise<JobOutcome> {
  const onLog = (line: string) => job.log(line);
  try {
    if (spec.modelPath === undefined) {
      const busy = [...running].some((j) => j !== job && j.spec.kind === "run_test");
      if (busy) return { status: "failed", error: "storage cleanup refused: a benchmark is running" };
      job.log("Removing every local model copy");
      await resolver.cleanupAll({ onLog });
    } else {
      if (modelInUse(spec.modelPath, job)) return { status: "failed", error: `storage cleanup refused: ${spec.modelPath} is in use by a job` };
      job.log(`Removing the local copy of ${spec.modelPath}`);
      await resolver.evict(spec.modelPath, { onLog });
    }
  } catch (err) {
    return { status: "failed", error: `storage cleanup failed: ${errorText(err)}` };
  }
  return { status: "completed" };
}
