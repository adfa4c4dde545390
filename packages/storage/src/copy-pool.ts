import type { Worker } from "node:worker_threads";
import { constants } from "node:fs";

/**
 * Makes `dest` (which must not exist) a copy of `src`: data copied by the
 * kernel, mtime set to `mtimeMs` (the next incremental pass compares it with
 * the share). Not fsynced: durability comes after, off the job's critical
 * path (durability.ts).
 */
export type CopyFileFn = (src: string, dest: string, mtimeMs: number) => Promise<void>;

// Runs in worker threads. The copies use the synchronous calls on purpose: on
// a worker's own thread they block nothing else, whereas fs.promises would
// take libuv's 4 shared pool threads for the whole copy and stall the daemon's
// other file and DNS work (heartbeats) behind a multi-GB shard.
// getBuiltinModule works whether the eval'd source runs as CommonJS or, when
// the process has --input-type=module (which workers inherit), as ESM.
const WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule("node:worker_threads");
const fs = process.getBuiltinModule("node:fs");
parentPort.on("message", (m) => {
  try {
    if (m.fsync !== undefined) {
      // Durability pass: files first, then directories (read-only fds fsync too).
      for (const p of m.fsync) {
        const fd = fs.openSync(p, "r");
        try {
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
      }
    } else {
      // COPYFILE_EXCL: libuv then creates the file with O_EXCL and skips its
      // ftruncate(0), which on ext4 (auto_da_alloc) would start writeback of
      // the whole file at close and make the job wait for the disk.
      fs.copyFileSync(m.src, m.dest, m.flags);
      // Read-only is enough for futimes (we own the file), and works when the
      // share's file mode (which the copy keeps) is 0444.
      const fd = fs.openSync(m.dest, "r");
      try {
        fs.futimesSync(fd, new Date(), new Date(m.mtimeMs));
      } finally {
        fs.closeSync(fd);
      }
    }
    parentPort.postMessage({ id: m.id });
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: { message: String(err && err.message), code: err && err.code } });
  }
});
`;

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: Pending & { id: number } | undefined;
  /** Ends the worker when it has stayed idle for the pool's idleMs. */
  idleTimer: NodeJS.Timeout | undefined;
}

/**
 * How long a worker may stay idle before it is ended: each holds an isolate
 * of its own (about 11 MiB), and an agent stages a model, then runs for hours
 * without copying. A new copy starts a new worker (tens of ms).
 */
export const DEFAULT_WORKER_IDLE_MS = 30_000;

type Job = Pending & ({ src: string; dest: string; mtimeMs: number } | { fsync: string[] });

/**
 * A queue of file copies served by worker threads; the workers do not keep
 * the process alive, and end after `idleMs` without work.
 */
export class CopyPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private size: number;
  private nextId = 1;
  private readonly idleMs: number;

  constructor(size: number, options: { idleMs?: number } = {}) {
    this.size = size;
    this.idleMs = options.idleMs ?? DEFAULT_WORKER_IDLE_MS;
  }

  /** Worker threads running now (busy or idle). */
  get workers(): number {
    return this.slots.length;
  }

  /** Allow at least `n` copies at once. */
  ensureSize(n: number): void {
    this.size = Math.max(this.size, n);
  }

  readonly copyFile: CopyFileFn = (src, dest, mtimeMs) =>
    new Promise<void>((resolve, reject) => {
      this.queue.push({ src, dest, mtimeMs, resolve, reject });
      this.pump();
    });

  /** fsync each path in order (files, then the directories holding them) on a worker thread. */
  readonly fsyncAll = (paths: readonly string[]): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      this.queue.push({ fsync: [...paths], resolve, reject });
      this.pump();
    });

  private spawn(): Slot {
    // worker_threads is taken on the first copy: an idle agent never needs it (~2 MiB).
    const { Worker: WorkerThread } = process.getBuiltinModule("node:worker_threads");
    const worker = new WorkerThread(WORKER_SOURCE, { eval: true });
    const slot: Slot = { worker, busy: undefined, idleTimer: undefined };
    worker.on("message", (m: { id: number; error?: { message: string; code?: string } }) => {
      const job = slot.busy;
      if (job === undefined || job.id !== m.id) return;
      slot.busy = undefined;
      worker.unref();
      if (m.error === undefined) job.resolve();
      else job.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
      this.pump();
      if (slot.busy === undefined) this.idle(slot);
    });
    const fail = (err: Error): void => {
      clearTimeout(slot.idleTimer);
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      slot.busy?.reject(err);
      slot.busy = undefined;
      this.pump();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`copy worker exited with code ${code}`)));
    // Idle workers must not keep the process alive; busy ones must (see pump).
    // After the listeners: adding them re-references the worker.
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  /** Ends the worker if it is still idle in idleMs (its 'exit' takes it out of the pool). */
  private idle(slot: Slot): void {
    clearTimeout(slot.idleTimer);
    slot.idleTimer = setTimeout(() => {
      if (slot.busy !== undefined) return;
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      void slot.worker.terminate();
    }, this.idleMs);
    slot.idleTimer.unref();
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.busy === undefined);
      if (slot === undefined && this.slots.length < this.size) slot = this.spawn();
      if (slot === undefined) return;
      const job = this.queue.shift();
      if (job === undefined) return;
      const id = this.nextId++;
      clearTimeout(slot.idleTimer);
      slot.busy = { id, resolve: job.resolve, reject: job.reject };
      slot.worker.ref();
      slot.worker.postMessage(
        "fsync" in job
          ? { id, fsync: job.fsync }
          : { id, src: job.src, dest: job.dest, mtimeMs: job.mtimeMs, flags: constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE },
      );
    }
  }

  /** Stop the workers (after their current copy); queued copies are rejected. */
  async close(): Promise<void> {
    for (const job of this.queue.splice(0)) job.reject(new Error("copy pool closed"));
    await Promise.all(
      this.slots.splice(0).map((s) => {
        clearTimeout(s.idleTimer);
        return s.worker.terminate();
      }),
    );
  }
}

let shared: CopyPool | undefined;

/** The process-wide pool the stores use by default, grown to `concurrency` workers. */
export function sharedCopyPool(concurrency: number): CopyPool {
  shared ??= new CopyPool(concurrency);
  shared.ensureSize(concurrency);
  return shared;
}
