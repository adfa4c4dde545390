import { statSync } from "node:fs";

/** What `onProgress` receives while a model is copied. */
export interface StagingProgress {
  /** The model's last path part, e.g. `Qwen3-8B`. */
  model: string;
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
  /** Average since the copy started. */
  bytesPerSecond: number;
  /** Undefined until a rate is known. */
  etaSeconds: number | undefined;
  elapsedSeconds: number;
}

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/** Binary units, labelled as such (GiB, MiB), as every size the agent prints. */
export function unitFor(bytes: number): { div: number; name: string } {
  return bytes >= GIB ? { div: GIB, name: "GiB" } : { div: MIB, name: "MiB" };
}

/** `12.4/16.1 GiB`: both numbers in the unit of the total. */
export function formatBytesPair(done: number, total: number): string {
  const u = unitFor(total);
  return `${(done / u.div).toFixed(1)}/${(total / u.div).toFixed(1)} ${u.name}`;
}

/** `16.1 GiB`, `32.0 MiB`: one size in binary units, labelled as such. */
export function formatSize(bytes: number): string {
  const u = unitFor(bytes);
  return `${(bytes / u.div).toFixed(1)} ${u.name}`;
}

export function formatRate(bytesPerSecond: number): string {
  const u = unitFor(bytesPerSecond);
  return `${(bytesPerSecond / u.div).toFixed(1)} ${u.name}/s`;
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** `Copying Qwen3-8B: 12.4/16.1 GiB (77%), 1.8 GiB/s, ETA 2s` */
export function formatProgressLine(p: StagingProgress): string {
  const pct = p.bytesTotal === 0 ? 100 : Math.floor((p.bytesDone / p.bytesTotal) * 100);
  const eta = p.etaSeconds === undefined ? "ETA ?" : `ETA ${formatDuration(p.etaSeconds)}`;
  return `Copying ${p.model}: ${formatBytesPair(p.bytesDone, p.bytesTotal)} (${pct}%), ${formatRate(p.bytesPerSecond)}, ${eta}`;
}

/**
 * Tracks a copy. fs.copyFile reports nothing until a file is done, so bytes of
 * files in flight are read from their destination sizes. statSync on purpose:
 * the async stat would queue behind the copies on libuv's thread pool and
 * report late; these are a handful of local metadata calls per sample.
 */
export interface ProgressTrackerOptions {
  model: string;
  filesTotal: number;
  bytesTotal: number;
  now: () => number;
  emit: (p: StagingProgress) => void;
  log: (line: string) => void;
  logIntervalMs: number;
}

export class ProgressTracker {
  private readonly inFlight = new Map<string, number>();
  private readonly o: ProgressTrackerOptions;
  private bytesFinished = 0;
  private filesDone = 0;
  private readonly started: number;
  private lastLog: number;

  constructor(options: ProgressTrackerOptions) {
    this.o = options;
    this.started = options.now();
    this.lastLog = this.started;
  }

  fileStarted(dest: string, size: number): void {
    this.inFlight.set(dest, size);
  }

  fileDone(dest: string): void {
    this.bytesFinished += this.inFlight.get(dest) ?? 0;
    this.inFlight.delete(dest);
    this.filesDone++;
    this.report();
  }

  sample(): StagingProgress {
    let partial = 0;
    for (const [dest, size] of this.inFlight) {
      try {
        partial += Math.min(size, statSync(dest).size);
      } catch {
        // Not created yet, or removed by a cancel.
      }
    }
    const bytesDone = Math.min(this.o.bytesTotal, this.bytesFinished + partial);
    const elapsedSeconds = Math.max(0, (this.o.now() - this.started) / 1000);
    const bytesPerSecond = elapsedSeconds > 0 ? bytesDone / elapsedSeconds : 0;
    const etaSeconds = bytesPerSecond > 0 ? (this.o.bytesTotal - bytesDone) / bytesPerSecond : undefined;
    return {
      model: this.o.model,
      bytesDone,
      bytesTotal: this.o.bytesTotal,
      filesDone: this.filesDone,
      filesTotal: this.o.filesTotal,
      bytesPerSecond,
      etaSeconds,
      elapsedSeconds,
    };
  }

  /** Emit a sample; also log a line when `logIntervalMs` has passed since the last one. */
  report(): StagingProgress {
    const p = this.sample();
    this.o.emit(p);
    const t = this.o.now();
    if (t - this.lastLog >= this.o.logIntervalMs) {
      this.lastLog = t;
      this.o.log(formatProgressLine(p));
    }
    return p;
  }
}
