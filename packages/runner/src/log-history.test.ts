import { writeFile } from "node:fs/promises";
import { join } from "node:path";

import { MemoryLogger } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { LogHistory } from "./log-history.js";
import { LogStream, type LogEvent } from "./log-stream.js";

const tempDir = useTempDir(afterEach, "kitt-runner-history-");

function lines(events: LogEvent[]): string[] {
  return events.flatMap((e) => (e.type === "line" ? [e.line] : e.type === "dropped" ? [`<dropped ${e.count}>`] : []));
}

async function drain<E>(iter: AsyncIterable<LogEvent<E>>): Promise<LogEvent<E>[]> {
  const out: LogEvent<E>[] = [];
  for await (const e of iter) out.push(e);
  return out;
}

describe("LogStream with a history on disk", () => {
  it("a late reader gets the whole log from line 1, in order, with no dropped notice; seqs are the stream's", async () => {
    const dir = await tempDir();
    const stream = new LogStream<{ status: string }>(100, undefined, new LogHistory(join(dir, "c1.log"), new MemoryLogger()));
    const all = Array.from({ length: 5_000 }, (_, i) => (i % 7 === 0 ? `line ${i + 1}\nwith a newline and ünïcode ✓` : `line ${i + 1} ${"x".repeat(i % 300)}`));
    // Writes of earlier lines are still in flight while later ones come.
    for (const [i, l] of all.entries()) {
      stream.append(l);
      if (i % 97 === 0) await new Promise((r) => setImmediate(r));
    }
    stream.end({ status: "completed" });
    const events = await drain(stream.subscribe());
    expect(lines(events)).toEqual(all);
    expect(events.filter((e) => e.type === "line").map((e) => (e as { seq: number }).seq)).toEqual(all.map((_, i) => i + 1));
    expect(events.at(-1)).toEqual({ type: "end", info: { status: "completed" } });
    // Resuming after a Last-Event-ID deep in the history.
    expect(lines(await drain(stream.subscribe({ afterSeq: 4_321 })))).toEqual(all.slice(4_321));
  });

  it("a reader who comes mid-job gets what came before it from disk; after that a reader really too slow is told what it lost", async () => {
    const dir = await tempDir();
    const stream = new LogStream<{ status: string }>(50, undefined, new LogHistory(join(dir, "c2.log"), new MemoryLogger()));
    for (let i = 1; i <= 2_000; i++) stream.append(`l${i}`);
    const late = stream.subscribe({ maxQueue: 10 });
    const early = lines(await late.nextBatch(5));
    expect(early).toEqual(["l1", "l2", "l3", "l4", "l5"]);
    // It reads no more while 3,000 lines more come: those it was there for, and it fell far behind.
    for (let i = 2_001; i <= 5_000; i++) stream.append(`l${i}`);
    stream.end({ status: "completed" });
    const rest: string[] = [];
    for await (const e of late) if (e.type !== "end") rest.push(...lines([e]));
    // Everything from before it came, from disk; then a notice, then the newest lines.
    expect(rest.slice(0, 1_995)).toEqual(Array.from({ length: 1_995 }, (_, i) => `l${i + 6}`));
    expect(rest[1_995]).toMatch(/^<dropped \d+>$/);
    expect(rest.at(-1)).toBe("l5000");
    expect(late.dropped).toBeGreaterThan(2_900);
  });

  it("without a usable history (the disk refuses it) readers are told what they lost, as before", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "not-a-dir"), "");
    const logger = new MemoryLogger();
    const stream = new LogStream<{ status: string }>(10, undefined, new LogHistory(join(dir, "not-a-dir", "c3.log"), logger));
    for (let i = 1; i <= 100; i++) stream.append(`l${i}`);
    await stream.history?.flush();
    stream.end({ status: "completed" });
    const events = await drain(stream.subscribe());
    expect(lines(events)).toEqual(["<dropped 90>", ...Array.from({ length: 10 }, (_, i) => `l${i + 91}`)]);
    expect(logger.records.filter((r) => r.level === "warn" && /job log history .*c3\.log: .*late readers get the last lines only/.test(r.message))).toHaveLength(1);
  });

  it("stops growing at its size cap: later lines are in the ring only", async () => {
    const dir = await tempDir();
    const stream = new LogStream<{ status: string }>(5, undefined, new LogHistory(join(dir, "c4.log"), new MemoryLogger(), 10 * 8));
    for (let i = 1; i <= 40; i++) stream.append(`l${String(i).padStart(3, "0")}`); // 7 bytes a record
    stream.end({ status: "completed" });
    const got = lines(await drain(stream.subscribe()));
    expect(got.slice(0, 11)).toEqual(Array.from({ length: 11 }, (_, i) => `l${String(i + 1).padStart(3, "0")}`));
    expect(got.slice(11)).toEqual(["<dropped 24>", "l036", "l037", "l038", "l039", "l040"]);
  });
});
