import { appendFile, readFile, rm } from "node:fs/promises";
import { join } from "node:path";

import type { Logger } from "@kitt/protocol";

import { errorText } from "./job.js";
import { writeAtomic } from "./outbox.js";

/**
 * The on-disk copy of one job's undelivered log lines: `<test>.log` holds
 * one JSON string per line (a line with a newline in it stays one record),
 * `<test>.pos` how many records the server has acknowledged. Appends are
 * batched and never awaited by the caller. Neither file is fsynced: after a
 * power cut a few lines may be sent twice, never silently lost.
 */
export class LogSpool {
  private buffer: string[] = [];
  private appendDone: Promise<void> = Promise.resolve();
  private appending = false;
  private posDone: Promise<void> = Promise.resolve();
  private posBusy = false;
  private posDirty = false;
  private position = 0;

  constructor(
    readonly dir: string,
    readonly testId: string,
    private readonly logger: Logger,
  ) {}

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
    await this.settle();
    await rm(this.path("log"), { force: true });
    await rm(this.path("pos"), { force: true });
  }

  private flush(): void {
    if (this.appending || this.buffer.length === 0) return;
    this.appending = true;
    const chunk = `${this.buffer.join("\n")}\n`;
    this.buffer = [];
    this.appendDone = appendFile(this.path("log"), chunk, { mode: 0o600 })
      .catch((err: unknown) => this.logger.warn(`log spool for test ${this.testId}: ${errorText(err)}`))
      .finally(() => {
        this.appending = false;
        this.flush();
      });
  }

  private path(ext: "log" | "pos"): string {
    return join(this.dir, `${this.testId}.${ext}`);
  }

  /** What a previous run left beyond its acknowledged position. */
  static async read(dir: string, testId: string): Promise<{ lines: string[]; deliveredRecords: number }> {
    const records = (await readFile(join(dir, `${testId}.log`), "utf8")).split("\n");
    if (records.at(-1) === "") records.pop();
    const pos = Number((await readFile(join(dir, `${testId}.pos`), "utf8").catch(() => "0")).trim());
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
