/**
 * Finding and killing what is left of a benchmark's process group after the
 * agent itself was killed. A pid is only a number that the kernel hands out
 * again: each process is checked by its start time (clock ticks since boot,
 * /proc/<pid>/stat field 22), so that a process that merely reuses a
 * recorded number is never hit.
 */
import { readdir, readFile } from "node:fs/promises";

export interface ProcStat {
  pid: number;
  pgrp: number;
  /** Field 3: R, S, D, Z, X... */
  state: string;
  startTicks: number;
}

/** /proc/<pid>/stat, parsed; undefined when the process is gone (or /proc is not Linux's). */
export async function readProcStat(pid: number, procRoot = "/proc"): Promise<ProcStat | undefined> {
  let text: string;
  try {
    text = await readFile(`${procRoot}/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = rest[0] ?? "";
  const pgrp = Number(rest[2]);
  const startTicks = Number(rest[19]);
  if (!Number.isInteger(pgrp) || !Number.isInteger(startTicks)) return undefined;
  return { pid, pgrp, state, startTicks };
}

/**
 * The live members of process group `pgid` that started no earlier than the
 * group's leader did (`startTicks`). Zombies do not count: they hold nothing.
 */
export async function groupMembers(pgid: number, startTicks: number, procRoot = "/proc"): Promise<ProcStat[]> {
  // The leader alive with another start time: the number was handed out again, the group is not ours.
  const leader = await readProcStat(pgid, procRoot);
  if (leader !== undefined && leader.startTicks !== startTicks) return [];
  const names = await readdir(procRoot).catch(() => [] as string[]);
  const members: ProcStat[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const st = await readProcStat(Number(name), procRoot);
    if (st === undefined || st.pgrp !== pgid || st.state === "Z" || st.state === "X") continue;
    if (st.startTicks >= startTicks) members.push(st);
  }
  return members;
}

/**
 * SIGKILLs what survives of the group a benchmark led (recorded as pgid and
 * the leader's start time), then waits (bounded) until it is gone. Returns
 * how many processes were found. The group id cannot have been given to
 * another group while any of these members lives, and members that started
 * before the recorded leader are not its descendants.
 */
export async function killLeftoverGroup(pgid: number, startTicks: number, options: { waitMs?: number; procRoot?: string } = {}): Promise<number> {
  const procRoot = options.procRoot ?? "/proc";
  const members = await groupMembers(pgid, startTicks, procRoot);
  if (members.length === 0) return 0;
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // Gone meanwhile, or not ours: each member is tried below.
  }
  for (const m of members) {
    try {
      process.kill(m.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  const deadline = Date.now() + (options.waitMs ?? 5_000);
  while (Date.now() < deadline && (await groupMembers(pgid, startTicks, procRoot)).length > 0) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return members.length;
}

/** The variable every host benchmark gets (its job's command id), inherited by what it starts. */
export const JOB_ENV = "KITT_AGENT_JOB";

/**
 * Processes whose environment says they belong to job `commandId` (see
 * JOB_ENV): found even when the agent died before it could journal the
 * benchmark's process group. Only processes of this user can be read.
 */
export async function jobProcesses(commandId: string, procRoot = "/proc"): Promise<ProcStat[]> {
  const marker = Buffer.from(`${JOB_ENV}=${commandId}\0`);
  const out: ProcStat[] = [];
  for (const name of await readdir(procRoot).catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let environ: Buffer;
    try {
      environ = await readFile(`${procRoot}/${name}/environ`);
    } catch {
      continue; // gone, or not ours
    }
    if (!environ.subarray(0, marker.length).equals(marker) && !environ.includes(Buffer.concat([Buffer.from([0]), marker]))) continue;
    const st = await readProcStat(Number(name), procRoot);
    if (st !== undefined && st.state !== "Z" && st.state !== "X") out.push(st);
  }
  return out;
}

/** SIGKILLs every process of job `commandId` (by JOB_ENV) and waits (bounded) until they are gone; returns how many. */
export async function killJobProcesses(commandId: string, options: { waitMs?: number; procRoot?: string } = {}): Promise<number> {
  const procRoot = options.procRoot ?? "/proc";
  const found = await jobProcesses(commandId, procRoot);
  for (const p of found) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  const deadline = Date.now() + (options.waitMs ?? 5_000);
  while (found.length > 0 && Date.now() < deadline && (await jobProcesses(commandId, procRoot)).length > 0) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return found.length;
}
