import { describe, expect, it } from "vitest";

import { LogStream, type LogEvent } from "./log-stream.js";

async function drain<E>(iter: AsyncIterable<LogEvent<E>>): Promise<LogEvent<E>[]> {
  const out: LogEvent<E>[] = [];
  for await (const e of iter) out.push(e);
  return out;
}

function lines(events: LogEvent[]): string[] {
  return events.flatMap((e) => (e.type === "line" ? [e.line] : e.type === "dropped" ? [`<dropped ${e.count}>`] : []));
}

describe("LogStream", () => {
  it("numbers lines 1, 2, 3 and keeps only the last N in the ring", () => {
    const stream = new LogStream(3);
    for (let i = 1; i <= 5; i++) stream.append(`l${i}`);
    expect(stream.lastSeq).toBe(5);
    expect(stream.buffered()).toEqual([
      { seq: 3, line: "l3" },
      { seq: 4, line: "l4" },
      { seq: 5, line: "l5" },
    ]);
    expect(stream.buffered(4)).toEqual([{ seq: 5, line: "l5" }]);
  });

  it("gives a late subscriber the buffer (and how many it missed), then live lines, then the end", async () => {
    const stream = new LogStream<{ status: string }>(3);
    for (let i = 1; i <= 5; i++) stream.append(`l${i}`);
    const sub = stream.subscribe();
    const done = drain(sub);
    stream.append("l6");
    stream.end({ status: "completed" });
    const events = await done;
    expect(events).toEqual([
      { type: "dropped", count: 2 },
      { type: "line", seq: 3, line: "l3" },
      { type: "line", seq: 4, line: "l4" },
      { type: "line", seq: 5, line: "l5" },
      { type: "line", seq: 6, line: "l6" },
      { type: "end", info: { status: "completed" } },
    ]);
    expect(stream.subscriberCount).toBe(0);
  });

  it("resumes after a Last-Event-ID and replays an ended stream", async () => {
    const stream = new LogStream(10);
    for (let i = 1; i <= 4; i++) stream.append(`l${i}`);
    stream.end("bye");
    expect(lines(await drain(stream.subscribe({ afterSeq: 2 })))).toEqual(["l3", "l4"]);
    const all = await drain(stream.subscribe());
    expect(all.at(-1)).toEqual({ type: "end", info: "bye" });
    expect(await drain(stream.subscribe({ liveOnly: true }))).toEqual([{ type: "end", info: "bye" }]);
  });

  it("a slow subscriber skips to the newest lines, is told how many it lost, and does not hold back a fast one", async () => {
    const stream = new LogStream(1000);
    const slow = stream.subscribe({ maxQueue: 10 });
    const fast = stream.subscribe({ maxQueue: 10 });
    const fastLines: string[] = [];
    const fastDone = (async () => {
      for await (const e of fast) if (e.type === "line") fastLines.push(e.line);
    })();
    // The fast reader gets a turn of the event loop after every line; the slow one never reads.
    for (let i = 1; i <= 100; i++) {
      stream.append(`l${i}`);
      await new Promise((r) => setImmediate(r));
    }
    stream.end(null);
    await fastDone;
    expect(fastLines).toHaveLength(100);
    expect(fast.dropped).toBe(0);

    const slowEvents = await drain(slow);
    expect(lines(slowEvents)).toEqual(["<dropped 90>", ...Array.from({ length: 10 }, (_, i) => `l${i + 91}`)]);
    expect(slow.dropped).toBe(90);
    expect(slowEvents.at(-1)?.type).toBe("end");
  });

  it("reports a gap where it happened when the reader catches up mid-stream", async () => {
    const stream = new LogStream(100);
    const sub = stream.subscribe({ maxQueue: 2 });
    stream.append("a");
    expect(await sub.next()).toMatchObject({ line: "a" });
    for (const l of ["b", "c", "d", "e"]) stream.append(l);
    stream.end(0);
    expect(lines(await drain(sub))).toEqual(["<dropped 2>", "d", "e"]);
  });

  it("a parked reader is woken once for everything appended meanwhile and takes it in one batch", async () => {
    const stream = new LogStream<string>(5000);
    const readers = Array.from({ length: 500 }, () => stream.subscribe({ maxQueue: 5000 }));
    const batches = readers.map((r) => r.nextBatch());
    // The producer appends without a turn of the event loop: no reader runs in between.
    for (let i = 1; i <= 2000; i++) stream.append(`l${i}`);
    stream.end("done");
    for (const batch of await Promise.all(batches)) {
      expect(batch).toHaveLength(2001);
      expect(batch[0]).toEqual({ type: "line", seq: 1, line: "l1" });
      expect(batch.at(-1)).toEqual({ type: "end", info: "done" });
    }
    expect(await readers[0]?.nextBatch()).toEqual([]);
    expect(stream.subscriberCount).toBe(0);
  });

  it("readers that never read hold no lines of their own: each finds the newest ones when it does", async () => {
    const stream = new LogStream<null>(100);
    const idle = Array.from({ length: 1000 }, () => stream.subscribe({ maxQueue: 5 }));
    for (let i = 1; i <= 10_000; i++) stream.append(`l${i}`);
    stream.end(null);
    for (const sub of [idle[0], idle[999]]) {
      expect(lines(await drain(sub!))).toEqual(["<dropped 9995>", "l9996", "l9997", "l9998", "l9999", "l10000"]);
    }
  });

  it("close() ends a pending next() and detaches the subscriber", async () => {
    const stream = new LogStream();
    const sub = stream.subscribe();
    const pending = sub.next();
    expect(stream.subscriberCount).toBe(1);
    sub.close();
    expect(await pending).toBeUndefined();
    expect(stream.subscriberCount).toBe(0);
    stream.append("after close");
    expect(await sub.next()).toBeUndefined();
  });

  it("caps a replay by the subscriber's queue, keeping the newest lines", async () => {
    const stream = new LogStream(100);
    for (let i = 1; i <= 50; i++) stream.append(`l${i}`);
    stream.end(0);
    expect(lines(await drain(stream.subscribe({ maxQueue: 3 })))).toEqual(["<dropped 47>", "l48", "l49", "l50"]);
  });

  it("bounds the ring by characters too, always keeping the newest line", () => {
    const stream = new LogStream(1000, 10);
    for (const l of ["aaaa", "bbbb", "cccc"]) stream.append(l);
    expect(stream.buffered().map((e) => e.line)).toEqual(["bbbb", "cccc"]);
    stream.append("x".repeat(50));
    expect(stream.buffered()).toEqual([{ seq: 4, line: "x".repeat(50) }]);
  });

  it("letReadersCatchUp waits for a reader more than half the ring behind until it reads, and never past its bound", async () => {
    const stream = new LogStream(10);
    await stream.letReadersCatchUp(60_000); // no reader: at once
    const sub = stream.subscribe();
    for (let i = 1; i <= 8; i++) stream.append(`l${i}`);
    let caughtUp = false;
    const waiting = stream.letReadersCatchUp(60_000).then(() => (caughtUp = true));
    await new Promise((r) => setTimeout(r, 5));
    expect(caughtUp).toBe(false);
    expect((await sub.nextBatch()).map((e) => (e.type === "line" ? e.line : e.type))).toHaveLength(8);
    await waiting;
    // A reader that never reads holds the producer up by the bound at most.
    for (let i = 9; i <= 16; i++) stream.append(`l${i}`);
    await stream.letReadersCatchUp(5);
    expect(stream.lastSeq).toBe(16);
  });
});
