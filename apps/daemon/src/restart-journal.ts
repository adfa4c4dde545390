import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { isSafeId, type Logger, type StatusUpdate } from "@kitt/protocol";
import type { Reporter } from "@kitt/runner";

/**
 * Remembers on disk which tests are running, so that after a crash (SIGKILL,
 * power loss) the next start can report them failed instead of leaving them
 * `running` on the server forever. One small file per running test.
 */
export class RestartJournal {
  constructor(private readonly dir: string) {}

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  async started(testId: string): Promise<void> {
    if (!isSafeId(testId)) return;
    const tmp = join(this.dir, `.${testId}.tmp`);
    await writeFile(tmp, JSON.stringify({ test_id: testId, started_at: new Date().toISOString() }));
    await rename(tmp, join(this.dir, `${testId}.json`));
  }

  async ended(testId: string): Promise<void> {
    if (!isSafeId(testId)) return;
    await rm(join(this.dir, `${testId}.json`), { force: true });
  }

  /** Tests left running by a previous process. */
  async leftovers(): Promise<string[]> {
    const out: string[] = [];
    for (const name of await readdir(this.dir)) {
      if (name.startsWith(".")) {
        await rm(join(this.dir, name), { force: true });
        continue;
      }
      if (!name.endsWith(".json")) continue;
      try {
        const rec = JSON.parse(await readFile(join(this.dir, name), "utf8")) as { test_id?: unknown };
        if (isSafeId(rec.test_id)) out.push(rec.test_id);
      } catch {
        // a torn record: the name still tells the test
        const id = name.slice(0, -5);
        if (isSafeId(id)) out.push(id);
      }
    }
    return out;
  }

  /** Wraps a Reporter so that running/terminal statuses keep the journal current. */
  wrap(inner: Reporter, logger: Logger): Reporter {
    return {
      status: async (testId: string, update: StatusUpdate) => {
        try {
          if (update.status === "running") await this.started(testId);
        } catch (err) {
          logger.warn(`restart journal: ${(err as Error).message}`);
        }
        await inner.status(testId, update);
        if (update.status !== "running") await this.ended(testId).catch(() => undefined);
      },
      log: (testId, line) => inner.log(testId, line),
      result: (testId, report) => inner.result(testId, report),
    };
  }
}
