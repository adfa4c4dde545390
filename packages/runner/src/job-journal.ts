import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";

import { isSafeId } from "@kitt/protocol";

import { writeAtomic } from "./outbox.js";

export interface JournalRecord {
  commandId: string;
  testId: string;
  type: string;
  acceptedAt: number;
}

/**
 * One small file per accepted job, removed once the job has been reported.
 * What is still there when the agent starts are jobs a crash (SIGKILL,
 * power cut) interrupted: the server thinks they are dispatched or running
 * and nobody will ever finish them, so they are reported failed.
 */
export class JobJournal {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  async add(record: JournalRecord): Promise<void> {
    await writeAtomic(this.dir, `${record.commandId}.json`, JSON.stringify(record));
  }

  async remove(commandId: string): Promise<void> {
    await rm(join(this.dir, `${commandId}.json`), { force: true });
  }

  /** The records left by a previous run (unreadable ones are skipped and removed). */
  async leftovers(): Promise<JournalRecord[]> {
    const out: JournalRecord[] = [];
    for (const name of (await readdir(this.dir).catch(() => [] as string[])).sort()) {
      const path = join(this.dir, name);
      if (name.startsWith(".tmp-")) {
        await rm(path, { force: true });
        continue;
      }
      if (!name.endsWith(".json")) continue;
      try {
        const rec = JSON.parse(await readFile(path, "utf8")) as Partial<JournalRecord>;
        if (isSafeId(rec.commandId) && isSafeId(rec.testId) && typeof rec.type === "string") {
          out.push({ commandId: rec.commandId, testId: rec.testId, type: rec.type, acceptedAt: Number(rec.acceptedAt) || 0 });
          continue;
        }
      } catch {
        // fall through: not a record
      }
      await rm(path, { force: true });
    }
    return out.sort((a, b) => a.acceptedAt - b.acceptedAt);
  }
}
