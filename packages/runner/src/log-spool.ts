import { rm } from "node:fs/promises";
import { join } from "node:path";

import type { Logger } from "@kitt/protocol";

import { errorText } from "./job.js";
import { openRegularForWrite, readRegularFile, writeAtomic } from "./state-files.js";

/** A spool file past this is not read back (V8 strings end near 512 Mi characters). */
const MAX_SPOOL_READ_BYTES = 256 * 1024 * 1024;
/** After a failed append, how long before the next try by default (the lines wait in memory meanwhile). */
const APPEND_RETRY_MS = 5000;

/**
 * The on-disk copy of one job's undelivered log lines: `<test>.log` holds
 * one JSON string per line (a line with a newline in it stays one record),
 * `<test>.pos` how many records the server has acknowledged. Appends are
 * batched and never awaited by the caller. Neither file is fsynced: after a
 * power cut a few lines may be sent twice, never silently lost.
 *
 * The file is never opened through a symbolic link. An append the disk
 * refuses (full) is undone (the file is cut back to its last whole record)
 * and tried again later with the lines after it, so the file stays a
 * gap-free prefix of the job's lines; the shipper delivers them from memory
 * meanwhile.
 */
export class LogSpool {
  private buffer: string[] = [];
  private appendDone: Promise<void> = Promise.resolve();
  private appending = false;
  private posDone: Promise<void> = Promise.resolve();
  private posBusy = false;
  private posDirty = false;
  private position = 0;
  /** Bytes of whole records in the file (undefined: not opened yet). */
  private size: number | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private error: string | undefined;
  /** remove() was called: nothing more is written. */
  private removed = false;
  /** stop() was called: a failed append is not tried again. */
  private stopped = false;
  private halted = false;

  constructor(
    readonly dir: string,
    readonly testId: string,
    private readonly logger: Logger,
    private readonly onDiskError?: (error: string | undefined) => void,
    private readonly retryMs: number = APPEND_RETRY_MS,
  ) {}

  /** The last append error while appends fail; undefined when they work. */
  get diskError(): string | undefined {
    return this.error;
  }

  append(line: string): void {
    this.buffer.push(JSON.stringify(line));
    this.flush();
  }

  /** Records acknowledged so far; written one at a time, always the latest value. */
  savePosition(records: number): void {
    this.position = records;
    if (this.posBusy) {
      this.posDirty = true;
      return;
    }
    this.posBusy = true;
    this.posDirty = false;
    this.posDone = writeAtomic(this.dir, `${this.testId}.pos`, String(records), false)
      .catch((err: unknown) => this.logger.debug(`log spool position of test ${this.testId}: ${errorText(err)}`))
      .finally(() => {
        this.posBusy = false;
        if (this.posDirty) this.savePosition(this.position);
      });
  }

  /** Waits for pending writes. */
  async settle(): Promise<void> {
    while (this.appending || this.posBusy) await Promise.all([this.appendDone, this.posDone]);
  }

  /** Everything was delivered: the files go. */
  async remove(): Promise<void> {
    this.removed = true;
    this.buffer = [];
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.settle();
    this.setError(undefined);
    await rm(this.path("log"), { force: true });
    await rm(this.path("pos"), { force: true });
  }

  /** The agent stops: one last try for lines a failed append left in memory, then the pending writes. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.flush();
    await this.settle();
  }

  private flush(): void {
    if (this.removed || this.halted || this.appending || this.retryTimer !== undefined || this.buffer.length === 0) return;
    this.appending = true;
    const records = this.buffer;
    this.buffer = [];
    this.appendDone = this.appendRecords(records)
      .then(() => this.setError(undefined))
      .catch((err: unknown) => {
        // Kept, in order, before anything pushed since; tried again after a pause.
        if (this.removed) return;
        this.buffer = records.concat(this.buffer);
        if (this.error === undefined) this.logger.warn(`log spool for test ${this.testId}: ${errorText(err)}; its lines wait in memory, appending is retried every ${this.retryMs / 1000} s`);
        this.setError(errorText(err));
        if (this.stopped) {
          this.halted = true;
          return;
        }
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.flush();
        }, this.retryMs);
        this.retryTimer.unref();
      })
      .finally(() => {
        this.appending = false;
        this.flush();
      });
  }

  private async appendRecords(records: string[]): Promise<void> {
    const chunk = Buffer.from(`${records.join("\n")}\n`);
    const handle = await openRegularForWrite(this.path("log"));
    try {
      this.size ??= (await handle.stat()).size;
      const at = this.size;
      try {
        let done = 0;
        while (done < chunk.length) done += (await handle.write(chunk, done, chunk.length - done, at + done)).bytesWritten;
      } catch (err) {
        // Half a chunk on disk would break the record count the position file relies on.
        await handle.truncate(at).catch(() => {});
        throw err;
      }
      this.size = at + chunk.length;
    } finally {
      await handle.close();
    }
  }

  private setError(error: string | undefined): void {
    if (error === this.error) return;
    this.error = error;
    this.onDiskError?.(error);
  }

  private path(ext: "log" | "pos"): string {
    return join(this.dir, `${this.testId}.${ext}`);
  }

  /** What a previous run left beyond its acknowledged position. */
  static async read(dir: string, testId: string): Promise<{ lines: string[]; deliveredRecords: number }> {
    const records = (await readRegularFile(join(dir, `${testId}.log`), MAX_SPOOL_READ_BYTES)).split("\n");
    if (records.at(-1) === "") records.pop();
    const pos = Number((await readRegularFile(join(dir, `${testId}.pos`), 64).catch(() => "0")).trim());
    const start = Number.isInteger(pos) && pos >= 0 && pos <= records.length ? pos : 0;
    const lines: string[] = [];
    for (const raw of records.slice(start)) {
      try {
        const line = JSON.parse(raw) as unknown;
        if (typeof line === "string") lines.push(line);
      } catch {
        // A record cut by a crash mid-append (only ever the last one): skip it.
      }
    }
    return { lines, deliveredRecords: start };
  }
}
