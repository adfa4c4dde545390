import { constants } from "node:fs";
import { mkdir, open, rm, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { StringDecoder } from "node:string_decoder";

import type { Logger } from "@kitt/protocol";

import { errorText } from "./job.js";

/** Every this many lines the byte offset of a line is remembered (a read starts at most this many lines early). */
const INDEX_EVERY = 256;
/** Appends are gathered into writes of about this size. */
const WRITE_CHUNK = 256 * 1024;
/** A job's history stops growing here: the rest is in the ring only (and with the server). */
export const DEFAULT_HISTORY_MAX_BYTES = 256 * 1024 * 1024;
const READ_CHUNK = 256 * 1024;

/**
 * A job's whole log on disk, for readers who come late or read slowly:
 * one JSON string per line (a line with a newline stays one record), in
 * seq order from 1. Appending never waits for the disk: records are
 * gathered and written in the background, one write at a time. A write the
 * disk refuses stops the history (readers then get what the ring holds);
 * the file is never opened through a symbolic link.
 */
export class LogHistory {
  private handle: FileHandle | undefined;
  private opening: Promise<FileHandle> | undefined;
  private buffer: string[] = [];
  private bufferBytes = 0;
  /** Bytes of every record appended so far (written or not): the next record's offset. */
  private total = 0;
  private appended = 0;
  /** Highest seq whose record is in the file. */
  private written = 0;
  private chain: Promise<void> = Promise.resolve();
  private scheduled = false;
  /** offsets[k]: byte offset of the record of seq k * INDEX_EVERY + 1. */
  private readonly offsets: number[] = [];
  private broken = false;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly logger: Logger,
    private readonly maxBytes: number = DEFAULT_HISTORY_MAX_BYTES,
  ) {}

  /** Seqs 1..coveredUpTo can be read (once written). */
  get coveredUpTo(): number {
    return this.broken ? 0 : this.appended;
  }

  /** Records the line of `seq` (seqs come 1, 2, 3, ...). */
  append(seq: number, line: string): void {
    if (this.broken || this.closed || seq !== this.appended + 1) return;
    const record = `${JSON.stringify(line)}\n`;
    const size = Buffer.byteLength(record);
    if (this.total + size > this.maxBytes) return; // full: later lines stay out
    if ((seq - 1) % INDEX_EVERY === 0) this.offsets.push(this.total);
    this.total += size;
    this.buffer.push(record);
    this.bufferBytes += size;
    this.appended = seq;
    if (this.bufferBytes >= WRITE_CHUNK) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Starts writing what was appended; resolves once it is in the file (or the history broke). */
  flush(): Promise<void> {
    this.scheduled = false;
    if (this.buffer.length === 0 || this.broken) return this.chain;
    const data = this.buffer.join("");
    const upTo = this.appended;
    this.buffer = [];
    this.bufferBytes = 0;
    this.chain = this.chain.then(async () => {
      if (this.broken) return;
      try {
        const fh = await this.file();
        await fh.writeFile(data);
        this.written = upTo;
      } catch (err) {
        this.broken = true;
        this.logger.warn(`job log history ${this.path}: ${errorText(err)}; late readers get the last lines only`);
      }
    });
    return this.chain;
  }

  /**
   * Up to `max` lines from `fromSeq` on, from the file; undefined when the
   * history cannot give them (broken, or those lines were never kept).
   */
  async read(fromSeq: number, max: number): Promise<string[] | undefined> {
    if (this.broken || fromSeq < 1 || fromSeq > this.appended || max < 1) return undefined;
    if (this.written < fromSeq) await this.flush();
    if (this.broken || this.written < fromSeq) return undefined;
    const upTo = Math.min(this.written, fromSeq + max - 1);
    const block = Math.floor((fromSeq - 1) / INDEX_EVERY);
    let position = this.offsets[block];
    if (position === undefined) return undefined;
    let seq = block * INDEX_EVERY + 1;
    const out: string[] = [];
    let reader: FileHandle | undefined;
    try {
      reader = await open(this.path, constants.O_RDONLY | constants.O_NOFOLLOW);
      let rest = "";
      const decoder = new StringDecoder("utf8");
      const chunk = Buffer.alloc(READ_CHUNK);
      while (seq <= upTo) {
        const { bytesRead } = await reader.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        const records = (rest + decoder.write(chunk.subarray(0, bytesRead))).split("\n");
        rest = records.pop() ?? "";
        for (const record of records) {
          if (seq >= fromSeq && seq <= upTo) out.push(JSON.parse(record) as string);
          seq++;
          if (seq > upTo) break;
        }
      }
    } catch (err) {
      this.logger.debug(`reading job log history ${this.path}: ${errorText(err)}`);
      return undefined;
    } finally {
      await reader?.close().catch(() => {});
    }
    return out.length > 0 ? out : undefined;
  }

  /** No more lines: writes what is pending and closes the file (it stays readable). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
    await this.chain;
    const fh = this.handle ?? (this.opening !== undefined ? await this.opening.catch(() => undefined) : undefined);
    this.handle = undefined;
    await fh?.close().catch(() => {});
  }

  /** Closes and deletes the file. */
  async remove(): Promise<void> {
    await this.close();
    this.broken = true;
    await rm(this.path, { force: true }).catch(() => {});
  }

  private file(): Promise<FileHandle> {
    if (this.handle !== undefined) return Promise.resolve(this.handle);
    this.opening ??= (async () => {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const fh = await open(this.path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
      this.handle = fh;
      return fh;
    })();
    return this.opening;
  }
}
