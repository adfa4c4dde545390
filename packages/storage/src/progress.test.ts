import { describe, it, expect } from "vitest";
import path from "node:path";
import { writeFile } from "node:fs/promises";
import { formatDuration, formatProgressLine, ProgressTracker, type StagingProgress } from "./progress.js";
import { tempDir } from "./test-helpers.js";

describe("formatProgressLine", () => {
  it("matches the documented shape", () => {
    const line = formatProgressLine({
      model: "Qwen3-8B",
      bytesDone: 12.4 * 1024 ** 3,
      bytesTotal: 16.1 * 1024 ** 3,
      filesDone: 3,
      filesTotal: 5,
      bytesPerSecond: 1.8 * 1024 ** 3,
      etaSeconds: 2.05,
      elapsedSeconds: 6.9,
    });
    expect(line).toBe("Copying Qwen3-8B: 12.4/16.1 GiB (77%), 1.8 GiB/s, ETA 2s");
  });

  it("uses MiB below a GiB and says ETA ? before a rate is known", () => {
    const line = formatProgressLine({
      model: "tiny",
      bytesDone: 0,
      bytesTotal: 250 * 1024 ** 2,
      filesDone: 0,
      filesTotal: 2,
      bytesPerSecond: 0,
      etaSeconds: undefined,
      elapsedSeconds: 0,
    });
    expect(line).toBe("Copying tiny: 0.0/250.0 MiB (0%), 0.0 MiB/s, ETA ?");
  });

  it("formats long durations", () => {
    expect(formatDuration(65)).toBe("1m05s");
    expect(formatDuration(3 * 3600 + 120)).toBe("3h02m");
  });
});

describe("ProgressTracker", () => {
  it("counts bytes of files in flight from their destination size and logs at the interval", async () => {
    const dir = await tempDir();
    const a = path.join(dir, "a");
    const b = path.join(dir, "b");
    let t = 0;
    const seen: StagingProgress[] = [];
    const lines: string[] = [];
    const tracker = new ProgressTracker({
      model: "m",
      filesTotal: 2,
      bytesTotal: 3_000_000,
      now: () => t,
      emit: (p) => seen.push(p),
      log: (l) => lines.push(l),
      logIntervalMs: 5000,
    });
    tracker.fileStarted(a, 1_000_000);
    tracker.fileStarted(b, 2_000_000);
    await writeFile(b, Buffer.alloc(500_000));
    t = 1000;
    expect(tracker.report().bytesDone).toBe(500_000);
    expect(lines).toEqual([]);
    await writeFile(a, Buffer.alloc(1_000_000));
    t = 5000;
    tracker.fileDone(a);
    const last = seen[seen.length - 1];
    expect(last?.bytesDone).toBe(1_500_000);
    expect(last?.filesDone).toBe(1);
    expect(last?.bytesPerSecond).toBe(300_000);
    expect(last?.etaSeconds).toBe(5);
    expect(lines).toEqual(["Copying m: 1.4/2.9 MiB (50%), 0.3 MiB/s, ETA 5s"]);
  });
});
