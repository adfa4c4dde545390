import { describe, expect, it } from "vitest";

import { failureDelayMs, intervalDelayMs, unauthorizedDelayMs } from "./cadence.js";

const idle = { running: false, runningMinS: 60, jitterRatio: 0.1 };

describe("intervalDelayMs", () => {
  it("adds up to jitterRatio of the interval, never less than the interval", () => {
    expect(intervalDelayMs(30, { ...idle, random: () => 0 })).toBe(30_000);
    expect(intervalDelayMs(30, { ...idle, random: () => 0.5 })).toBe(31_500);
    expect(intervalDelayMs(30, { ...idle, random: () => 1 })).toBe(33_000);
    for (let i = 0; i < 1000; i++) {
      const ms = intervalDelayMs(30, { ...idle, random: Math.random });
      expect(ms).toBeGreaterThanOrEqual(30_000);
      expect(ms).toBeLessThanOrEqual(33_000);
    }
  });

  it("keeps the interval within 10..300 s", () => {
    expect(intervalDelayMs(1, { ...idle, random: () => 0 })).toBe(10_000);
    expect(intervalDelayMs(3600, { ...idle, random: () => 0 })).toBe(300_000);
  });

  it("waits at least 60 s while a job runs, longer intervals stay", () => {
    expect(intervalDelayMs(30, { ...idle, running: true, random: () => 0 })).toBe(60_000);
    expect(intervalDelayMs(10, { ...idle, running: true, random: () => 1 })).toBe(66_000);
    expect(intervalDelayMs(120, { ...idle, running: true, random: () => 0 })).toBe(120_000);
  });

  it("survives a broken random source", () => {
    expect(intervalDelayMs(30, { ...idle, random: () => Number.NaN })).toBe(30_000);
    expect(intervalDelayMs(30, { ...idle, random: () => 7 })).toBe(33_000);
    expect(intervalDelayMs(30, { ...idle, random: () => -3 })).toBe(30_000);
  });
});

describe("failureDelayMs", () => {
  const policy = { baseMs: 2_000, maxMs: 300_000 };

  it("doubles per consecutive failure with equal jitter, capped", () => {
    expect([1, 2, 3, 4].map((n) => failureDelayMs(n, policy, () => 1))).toEqual([2_000, 4_000, 8_000, 16_000]);
    expect([1, 2, 3, 4].map((n) => failureDelayMs(n, policy, () => 0))).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(failureDelayMs(30, policy, () => 1)).toBe(300_000);
    expect(failureDelayMs(30, policy, () => 0)).toBe(150_000);
  });
});

describe("unauthorizedDelayMs", () => {
  it("polls at the cap, jittered downwards only", () => {
    const policy = { baseMs: 2_000, maxMs: 300_000 };
    expect(unauthorizedDelayMs(policy, 0.1, () => 0)).toBe(300_000);
    expect(unauthorizedDelayMs(policy, 0.1, () => 1)).toBe(270_000);
  });
});
