import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";

import { afterEach, describe, expect, it } from "vitest";

import { JOB_ENV, jobProcesses, killJobProcesses, killLeftoverGroup, readProcStat } from "./process-group.js";

const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

/** A detached `sh` leading its own group, with a `sleep` child; returns the leader's pid. */
function startGroup(env: NodeJS.ProcessEnv = {}): number {
  const child = spawn("/bin/sh", ["-c", "sleep 30 & wait"], { detached: true, stdio: "ignore", env: { PATH: "/usr/bin:/bin", ...env } });
  child.unref();
  started.push(child.pid as number);
  return child.pid as number;
}

async function alive(pid: number): Promise<boolean> {
  try {
    return !/\) [ZX] /.test(await readFile(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 150));
}

describe("leftover benchmark processes", () => {
  it("kills a recorded group whose leader has the recorded start time", async () => {
    const pid = startGroup();
    await settle();
    const st = await readProcStat(pid);
    expect(st?.pgrp).toBe(pid);
    expect(await killLeftoverGroup(pid, st?.startTicks as number)).toBeGreaterThanOrEqual(2);
    expect(await alive(pid)).toBe(false);
  });

  it("leaves alone a group whose leader reuses the number with another start time", async () => {
    const pid = startGroup();
    await settle();
    const st = await readProcStat(pid);
    expect(await killLeftoverGroup(pid, (st?.startTicks as number) - 1)).toBe(0);
    expect(await alive(pid)).toBe(true);
  });

  it("finds the processes of a job by its mark, children included, and kills them", async () => {
    const pid = startGroup({ [JOB_ENV]: "job-123" });
    const other = startGroup({ [JOB_ENV]: "job-1234" });
    await settle();
    expect((await jobProcesses("job-123")).map((p) => p.pid)).toContain(pid);
    expect((await jobProcesses("job-123")).length).toBeGreaterThanOrEqual(2);
    expect(await killJobProcesses("job-123")).toBeGreaterThanOrEqual(2);
    expect(await alive(pid)).toBe(false);
    expect(await jobProcesses("job-123")).toEqual([]);
    // Another job's mark that merely starts alike is not touched.
    expect(await alive(other)).toBe(true);
  });
});
