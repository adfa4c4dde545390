import { constants } from "node:fs";
import { open, rm, type FileHandle } from "node:fs/promises";

/**
 * One read of the file. Its lines are handled before the event loop gets a
 * turn, so it is small: live SSE readers take lines from the ring between
 * two reads, and 8 KiB of a flood of short lines is still fewer lines than
 * the ring holds.
 */
const READ_BYTES = 8 * 1024;
/** After a read found nothing new, the next one waits this long, doubling up to POLL_MAX_MS. */
const POLL_MIN_MS = 2;
const POLL_MAX_MS = 100;

/**
 * The benchmark's output as a file the agent follows, as Docker's json-file
 * log driver keeps a container's: stdout and stderr both go to one file
 * opened O_APPEND (so their lines keep the order they were written in),
 * the benchmark writes at its own pace, and the agent reads behind it. A
 * pipe would make the benchmark wait whenever the agent reads slowly (its
 * 64 KiB fill in a millisecond); a file never does.
 *
 * The file is created fresh (O_EXCL, never through a link, mode 0600) and
 * removed by remove(). After an agent crash it is left in the runs
 * directory, which recovery empties.
 */
export class OutputFile {
  private position = 0;
  private finishing = false;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly path: string,
    /** The write end, for spawn's stdio; close it once the benchmark has it. */
    private writer: FileHandle | undefined,
    private readonly reader: FileHandle,
  ) {}

  static async create(path: string): Promise<OutputFile> {
    const writer = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
    try {
      const reader = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      return new OutputFile(path, writer, reader);
    } catch (err) {
      await writer.close();
      await rm(path, { force: true });
      throw err;
    }
  }

  /** The descriptor to give the benchmark as stdout and stderr. */
  get writeFd(): number {
    if (this.writer === undefined) throw new Error("output file: write end already closed");
    return this.writer.fd;
  }

  /** The agent's copy of the write end: the benchmark has its own once spawned. */
  async closeWriter(): Promise<void> {
    const writer = this.writer;
    this.writer = undefined;
    await writer?.close();
  }

  /**
   * Reads what is written as it comes, chunk by chunk in file order, until
   * finish() was called and everything written before it was read. `pace`
   * is awaited before each read (the writer never waits for it). Rejects
   * only when reading fails.
   */
  async follow(onChunk: (chunk: Buffer) => void, pace?: () => Promise<void>): Promise<void> {
    const buf = Buffer.allocUnsafe(READ_BYTES);
    let waitMs = POLL_MIN_MS;
    for (;;) {
      if (pace !== undefined) await pace();
      // Taken before the read: finish() after a read that found nothing still gets one more read.
      const last = this.finishing;
      const { bytesRead } = await this.reader.read(buf, 0, buf.length, this.position);
      if (bytesRead > 0) {
        this.position += bytesRead;
        onChunk(buf.subarray(0, bytesRead));
        waitMs = POLL_MIN_MS;
        continue;
      }
      if (last) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, waitMs);
      });
      this.wake = undefined;
      waitMs = Math.min(waitMs * 2, POLL_MAX_MS);
    }
  }

  /** Nobody writes any more (the benchmark's group is gone): follow() reads to the end, then resolves. */
  finish(): void {
    this.finishing = true;
    clearTimeout(this.timer);
    this.wake?.();
  }

  /** Closes and deletes the file. */
  async remove(): Promise<void> {
    this.finish();
    await this.closeWriter().catch(() => {});
    await this.reader.close().catch(() => {});
    await rm(this.path, { force: true });
  }
}
