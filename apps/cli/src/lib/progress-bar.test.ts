import { describe, expect, it } from "vitest";

import { progressBar } from "./progress-bar.js";

const base = { model: "Qwen3-8B", filesDone: 1, filesTotal: 4, elapsedSeconds: 3 };

describe("progressBar", () => {
  it("fills in proportion and fits the terminal", () => {
    const line = progressBar({ ...base, bytesDone: 4 * 1024 ** 3, bytesTotal: 16 * 1024 ** 3, bytesPerSecond: 1.8 * 1024 ** 3, etaSeconds: 6.7 }, 80);
    expect(line).toBe("Qwen3-8B [#########.........................] 25% 4.0/16.0 GiB 1.8 GiB/s ETA 7s");
    expect(line.length).toBeLessThan(80);
    expect(progressBar({ ...base, bytesDone: 0, bytesTotal: 0, bytesPerSecond: 0, etaSeconds: undefined }, 60)).toContain("100% 0.0/0.0 MiB 0.0 MiB/s ETA ?");
    expect(progressBar({ ...base, bytesDone: 5e6, bytesTotal: 10e6, bytesPerSecond: 1e6, etaSeconds: 5 }, 30).length).toBeLessThanOrEqual(29);
  });
});
