import { open, mkdir, readdir, readFile, rename, rm, type FileHandle } from "node:fs/promises";
import { constants } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";

import { isSafeId } from "@kitt/protocol";

/** What the journal remembers of a job's outcome: enough to report it again after a crash. */
export interface JournalOutcome {
  status: "completed" | "failed";
  error?: string;
  resultData?: Record<string, unknown>;
  containerId?: string;
}

/** A job the journal knows, as replayed at start. */
export interface JournalRecord {
  /** The command id; for a refusal of a command without one, an internal key starting with `~`. */
  commandId: string;
  testId: string;
  type: string;
  acceptedAt: number;
  /** False for a refusal without a command id: only a status can be posted. */
  hasCommandId: boolean;
  /** The host process group the benchmark led, and its leader's start time (clock ticks since boot). */
  processGroup?: { pgid: number; startTicks: number };
  /** Decided but maybe not yet in the outbox. */
  outcome?: JournalOutcome;
}

type Entry =
  | { t: "a"; c: string; s: string; k: string; at: number; n?: 1 }
  | { t: "p"; c: string; pg: number; st: number }
  | { t: "o"; c: string; o: JournalOutcome }
  | { t: "d"; c: string }
  | { t: "s"; c: string };

/** Command ids remembered after their job ended, so that a command sent again is a duplicate. */
const DEFAULT_REMEMBER = 10_000;
const FILE = "journal.log";
/** Lines appended before the file is compacted again while running. */
const COMPACT_AFTER = 50_000;

/**
 * The job journal: one append-only file of small JSON lines under
 * `<stateDir>/jobs/`. A job is recorded as accepted before it is
 * acknowledged or started, its outcome before that outcome goes to the
 * outbox, and `done` once the outbox holds it durably. Appends made while a
 * write is in flight are committed together with one write and one fsync
 * (group commit), so 3,000 commands of one heartbeat cost one or two
 * fsyncs, not 3,000.
 *
 * At start, `load()` replays the file: jobs without `done` are the ones a
 * crash interrupted; the command ids of the last ended jobs are kept to
 * recognise a command sent again. The file is then compacted (written anew,
 * atomically) to what is still needed. A torn last line (a crash mid-write)
 * was never acknowledged and is ignored.
 */
export class JobJournal {
  private fh: FileHandle | undefined;
  private buffer: string[] = [];
  private waiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private flushing: Promise<void> | undefined;
  private readonly seen = new Set<string>();
  private readonly seenOrder: string[] = [];
  private loaded = false;
  /** Records written since the last compaction, to compact again when the file grows. */
  private written = 0;
  private readonly remember: number;
  /** Jobs without `done`, kept current, for compaction. */
  private readonly open = new Map<string, JournalRecord>();
  /** fsyncs done, for tests and benchmarks. */
  syncs = 0;

  constructor(
    readonly dir: string,
    options: { remember?: number } = {},
  ) {
    this.remember = options.remember ?? DEFAULT_REMEMBER;
  }

  /**
   * Replays the journal: returns the jobs a previous run left unfinished (in
   * acceptance order) and compacts the file. Call once, before anything is
   * appended.
   */
  async load(): Promise<JournalRecord[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const open_ = new Map<string, JournalRecord>();
    const text = await readFile(join(this.dir, FILE), "utf8").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return "";
      throw err;
    });
    for (const line of text.split("\n")) {
      const e = parseEntry(line);
      if (e === undefined) continue;
      if (e.t === "a") {
        open_.set(e.c, { commandId: e.c, testId: e.s, type: e.k, acceptedAt: e.at, hasCommandId: e.n !== 1 });
      } else if (e.t === "s") {
        this.markSeen(e.c);
      } else {
        const rec = open_.get(e.c);
        if (rec === undefined) continue;
        if (e.t === "p") rec.processGroup = { pgid: e.pg, startTicks: e.st };
        else if (e.t === "o") rec.outcome = e.o;
        else {
          open_.delete(e.c);
          this.markSeen(e.c);
        }
      }
    }
    // Old-format journals (one <command id>.json per job) from an earlier version: adopt them.
    const legacy = await readLegacy(this.dir);
    for (const rec of legacy.records) if (!open_.has(rec.commandId)) open_.set(rec.commandId, rec);
    const leftovers = [...open_.values()].sort((a, b) => a.acceptedAt - b.acceptedAt);
    for (const rec of leftovers) {
      if (rec.hasCommandId) this.markSeen(rec.commandId);
      this.open.set(rec.commandId, { ...rec });
    }
    await this.compact();
    for (const path of legacy.paths) await rm(path, { force: true });
    this.loaded = true;
    return leftovers;
  }

  /** Whether a job with this command id was accepted before (this run or a remembered earlier one). */
  has(commandId: string): boolean {
    return this.seen.has(commandId);
  }

  /** Durable once the returned promise resolves. */
  accepted(rec: { commandId: string; testId: string; type: string; acceptedAt: number }): Promise<void> {
    this.markSeen(rec.commandId);
    return this.append({ t: "a", c: rec.commandId, s: rec.testId, k: rec.type, at: rec.acceptedAt });
  }

  /** A command refused on arrival: accepted and decided in one record pair; returns its journal key. */
  refused(rec: { commandId: string | undefined; testId: string; type: string; acceptedAt: number }, outcome: JournalOutcome): { key: string; durable: Promise<void> } {
    const key = rec.commandId ?? `~${randomBytes(8).toString("hex")}`;
    if (rec.commandId !== undefined) this.markSeen(rec.commandId);
    const a: Entry = { t: "a", c: key, s: rec.testId, k: rec.type, at: rec.acceptedAt, ...(rec.commandId === undefined ? { n: 1 as const } : {}) };
    return { key, durable: this.append(a, { t: "o", c: key, o: outcome }) };
  }

  processStarted(commandId: string, pgid: number, startTicks: number): Promise<void> {
    return this.append({ t: "p", c: commandId, pg: pgid, st: startTicks });
  }

  outcome(commandId: string, outcome: JournalOutcome): Promise<void> {
    return this.append({ t: "o", c: commandId, o: outcome });
  }

  /** The outbox holds the job's result and status: nothing left to recover. */
  done(commandId: string): Promise<void> {
    return this.append({ t: "d", c: commandId });
  }

  async close(): Promise<void> {
    await this.flushing?.catch(() => {});
    if (this.buffer.length > 0) await this.flush().catch(() => {});
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
  }

  private markSeen(commandId: string): void {
    if (this.seen.has(commandId)) return;
    this.seen.add(commandId);
    this.seenOrder.push(commandId);
    while (this.seenOrder.length > this.remember * 2) {
      // Forget the oldest half at once, so that this stays O(1) per id on average.
      for (const id of this.seenOrder.splice(0, this.remember)) this.seen.delete(id);
    }
  }

  private append(...entries: Entry[]): Promise<void> {
    if (!this.loaded) return Promise.reject(new Error("job journal: load() first"));
    for (const e of entries) {
      this.track(e);
      this.buffer.push(JSON.stringify(e));
    }
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.kick();
    return done;
  }

  private track(e: Entry): void {
    if (e.t === "a") {
      this.open.set(e.c, { commandId: e.c, testId: e.s, type: e.k, acceptedAt: e.at, hasCommandId: e.n !== 1 });
      return;
    }
    const rec = this.open.get(e.c);
    if (rec === undefined) return;
    if (e.t === "p") rec.processGroup = { pgid: e.pg, startTicks: e.st };
    else if (e.t === "o") rec.outcome = e.o;
    else if (e.t === "d") this.open.delete(e.c);
  }

  private kick(): void {
    if (this.flushing !== undefined || this.buffer.length === 0) return;
    // One tick of delay, so that every append of the same turn joins this write.
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.flush())
      .catch(() => {})
      .finally(() => {
        this.flushing = undefined;
        this.kick();
      });
  }

  private async flush(): Promise<void> {
    const lines = this.buffer;
    const waiters = this.waiters;
    this.buffer = [];
    this.waiters = [];
    try {
      this.fh ??= await open(join(this.dir, FILE), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
      await this.fh.write(`${lines.join("\n")}\n`);
      await this.fh.datasync();
      this.syncs++;
      this.written += lines.length;
      for (const w of waiters) w.resolve();
      if (this.written > COMPACT_AFTER) {
        await this.fh.close();
        this.fh = undefined;
        await this.compact().catch(() => {});
      }
    } catch (err) {
      for (const w of waiters) w.reject(err);
      // A failed handle (disk full, removed dir) is reopened by the next write.
      await this.fh?.close().catch(() => {});
      this.fh = undefined;
    }
  }

  /** Writes the file anew with only what is still needed: open jobs and the remembered ids. */
  private async compact(): Promise<void> {
    const lines: string[] = [];
    const open_ = [...this.open.values()];
    for (const id of this.seenOrder.slice(-this.remember)) if (!this.open.has(id)) lines.push(JSON.stringify({ t: "s", c: id } satisfies Entry));
    for (const r of open_) {
      lines.push(JSON.stringify({ t: "a", c: r.commandId, s: r.testId, k: r.type, at: r.acceptedAt, ...(r.hasCommandId ? {} : { n: 1 as const }) } satisfies Entry));
      if (r.processGroup !== undefined) lines.push(JSON.stringify({ t: "p", c: r.commandId, pg: r.processGroup.pgid, st: r.processGroup.startTicks } satisfies Entry));
      if (r.outcome !== undefined) lines.push(JSON.stringify({ t: "o", c: r.commandId, o: r.outcome } satisfies Entry));
    }
    const tmp = join(this.dir, `.tmp-${randomBytes(6).toString("hex")}`);
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await fh.write(lines.length > 0 ? `${lines.join("\n")}\n` : "");
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.dir, FILE));
    const dirFh = await open(this.dir, constants.O_RDONLY);
    await dirFh.sync().catch(() => {});
    await dirFh.close();
    this.written = 0;
  }
}

function parseEntry(line: string): Entry | undefined {
  if (line === "" || line.length > 1_000_000) return undefined;
  let e: unknown;
  try {
    e = JSON.parse(line);
  } catch {
    return undefined; // a torn last line
  }
  if (e === null || typeof e !== "object") return undefined;
  const r = e as Record<string, unknown>;
  const key = r.c;
  const okKey = typeof key === "string" && (isSafeId(key) || /^~[0-9a-f]{16}$/.test(key));
  if (!okKey) return undefined;
  switch (r.t) {
    case "a":
      return isSafeId(r.s) && typeof r.k === "string" && typeof r.at === "number" ? (r as Entry) : undefined;
    case "p":
      return Number.isInteger(r.pg) && (r.pg as number) > 1 && Number.isInteger(r.st) ? (r as Entry) : undefined;
    case "o": {
      const o = r.o as Record<string, unknown> | null;
      return o !== null && typeof o === "object" && (o.status === "completed" || o.status === "failed") ? (r as Entry) : undefined;
    }
    case "d":
    case "s":
      return r as Entry;
    default:
      return undefined;
  }
}

/** `<commandId>.json` files of the journal's first format (the caller removes them once compacted). */
async function readLegacy(dir: string): Promise<{ records: JournalRecord[]; paths: string[] }> {
  const out: JournalRecord[] = [];
  const paths: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const path = join(dir, name);
    if (name.startsWith(".tmp-")) {
      await rm(path, { force: true });
      continue;
    }
    if (!name.endsWith(".json")) continue;
    try {
      const rec = JSON.parse(await readFile(path, "utf8")) as Partial<JournalRecord>;
      if (isSafeId(rec.commandId) && isSafeId(rec.testId) && typeof rec.type === "string") {
        out.push({ commandId: rec.commandId, testId: rec.testId, type: rec.type, acceptedAt: Number(rec.acceptedAt) || 0, hasCommandId: true });
      }
    } catch {
      // not a record
    }
    paths.push(path);
  }
  return { records: out, paths };
}
