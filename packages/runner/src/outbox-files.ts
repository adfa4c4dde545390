import { readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";

import type { Logger } from "@kitt/protocol";

import { errorText } from "./job.js";
import type { OutboxEntry, OutboxMessage } from "./outbox.js";
import { ensureRealDir, isNotRegular, readRegularFile, writeAtomic } from "./state-files.js";

const SEQ_DIGITS = 12;
const ENTRY = /^(\d{12})\.json$/;
/** Far above any real entry (metrics.json is capped at 8 MiB): a bound on what start-up reads. */
const MAX_ENTRY_BYTES = 64 * 1024 * 1024;
/** Written and removed to see whether a full disk has room again; `.tmp-` so a crash leftover is swept at open. */
const PROBE = ".tmp-probe";

/** Where an entry is: memory only, being written, on disk, or delivered/set aside. */
export type Stored = "memory" | "writing" | "disk" | "gone";
export interface HeldEntry extends OutboxEntry {
  stored: Stored;
  /** Loaded from disk at start: a previous run may have delivered it just before it died. */
  resumed?: boolean;
}

function isMessage(value: unknown): value is OutboxMessage {
  if (value === null || typeof value !== "object") return false;
  const v = value as Record<string, unknown>;
  if (typeof v.testId !== "string") return false;
  if (v.kind === "status") return typeof v.update === "object" && v.update !== null;
  if (v.kind === "result") return typeof v.report === "object" && v.report !== null;
  return false;
}

function fileName(seq: number): string {
  return `${String(seq).padStart(SEQ_DIGITS, "0")}.json`;
}

/**
 * The outbox's files: `<seq>.json` per entry, `rejected/` for what the
 * server refused. Keeps track of whether the disk takes writes (the last
 * error until one works again) and logs the change once each way.
 */
export class OutboxFiles {
  diskError: string | undefined;

  constructor(
    readonly dir: string,
    private readonly logger: Logger,
    private readonly retryMs: number,
    /** Called after each failed write: the outbox schedules the next try. */
    private readonly onFailure: () => void,
  ) {}

  /** Creates the dirs (refusing links) and loads what a previous run left, oldest first. */
  async load(): Promise<{ entries: HeldEntry[]; nextSeq: number }> {
    const { dir } = this;
    await ensureRealDir(dir);
    await ensureRealDir(join(dir, "rejected"));
    const entries: HeldEntry[] = [];
    let nextSeq = 1;
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      if (name.startsWith(".tmp-")) {
        // A write interrupted before its rename: never acknowledged as written.
        await rm(path, { force: true });
        continue;
      }
      const match = ENTRY.exec(name);
      if (match === null) continue;
      const seq = Number(match[1]);
      nextSeq = Math.max(nextSeq, seq + 1);
      try {
        const message = JSON.parse(await readRegularFile(path, MAX_ENTRY_BYTES)) as unknown;
        if (!isMessage(message)) throw new Error("not an outbox message");
        entries.push({ seq, message, stored: "disk", resumed: true });
      } catch (err) {
        if (isNotRegular(err)) {
          // Not ours: a link (never followed) or a FIFO someone planted. It goes, its target stays untouched.
          this.logger.warn(`outbox: ${errorText(err)}; removed`);
          await rm(path, { force: true }).catch(() => {});
          continue;
        }
        this.logger.warn(`outbox entry ${name} is unreadable (${errorText(err)}): moved to rejected/`);
        await rename(path, join(dir, "rejected", name)).catch(() => {});
      }
    }
    return { entries, nextSeq };
  }

  /** Writes the entries only memory holds, oldest first; false at the first the disk refuses. */
  async persistBacklog(entries: readonly HeldEntry[]): Promise<boolean> {
    for (const entry of entries) {
      if (entry.stored === "memory" && !(await this.persist(entry))) return false;
    }
    return true;
  }

  async persist(entry: HeldEntry): Promise<boolean> {
    entry.stored = "writing";
    try {
      await writeAtomic(this.dir, fileName(entry.seq), JSON.stringify(entry.message));
    } catch (err) {
      if (entry.stored === "writing") entry.stored = "memory";
      this.failed(err);
      return false;
    }
    // Delivered while it was being written (settle() ran meanwhile: TypeScript cannot see that): the file is not needed.
    if ((entry.stored as Stored) === "gone") await rm(join(this.dir, fileName(entry.seq)), { force: true }).catch(() => {});
    else entry.stored = "disk";
    this.works();
    return true;
  }

  /** Nothing waits in memory but the disk refused: does it take a small write again? */
  async probe(): Promise<void> {
    try {
      await writeAtomic(this.dir, PROBE, "x".repeat(4096), false);
      await rm(join(this.dir, PROBE), { force: true });
      this.works();
    } catch (err) {
      this.failed(err);
    }
  }

  /** Delivered (or refused for good): the file goes (to `rejected/` when refused). */
  async settle(entry: HeldEntry, rejected: boolean): Promise<void> {
    const was = entry.stored;
    entry.stored = "gone";
    const name = fileName(entry.seq);
    const file = join(this.dir, name);
    const rejectedDir = join(this.dir, "rejected");
    if (was === "disk") {
      await (rejected ? rename(file, join(rejectedDir, name)) : rm(file, { force: true })).catch(() => {});
    } else if (rejected) {
      // Only memory held it: a copy for inspection if the disk takes it (a rename never follows a link planted there).
      await writeAtomic(rejectedDir, name, JSON.stringify(entry.message), false).catch(() => {});
    }
  }

  private failed(err: unknown): void {
    const text = errorText(err);
    if (this.diskError === undefined) {
      this.logger.error(
        `outbox: cannot write to ${this.dir} (${text}): status updates and results are kept in memory and delivered directly; writing is retried every ${this.retryMs / 1000} s`,
      );
    } else this.logger.debug(`outbox: ${this.dir} still refuses writes: ${text}`);
    this.diskError = text;
    this.onFailure();
  }

  private works(): void {
    if (this.diskError === undefined) return;
    this.diskError = undefined;
    this.logger.info(`outbox: ${this.dir} takes writes again`);
  }
}
