import { readFile } from "node:fs/promises";

export interface ProcStat {
  /** One-letter state (`R`, `S`, `Z`, ...). */
  state: string;
  /** Start time in clock ticks after boot (field 22 of /proc/<pid>/stat): with the pid, a process's identity. */
  startTime: string;
}

/**
 * The state and start time of `pid`, undefined when there is no such process.
 * The command name (field 2) may hold spaces and parentheses, so fields are
 * counted from the last `)`.
 */
export async function readProcStat(pid: number, procDir = "/proc"): Promise<ProcStat | undefined> {
  let text: string;
  try {
    text = await readFile(`${procDir}/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(")") + 2).trim().split(" ");
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  const state = fields[0];
  const startTime = fields[19];
  if (state === undefined || startTime === undefined || !/^\d+$/.test(startTime)) return undefined;
  return { state, startTime };
}

/** True when `pid` is alive (not a zombie) and is the same process that started at `startTime`. */
export async function isSameProcess(pid: number, startTime: string, procDir = "/proc"): Promise<boolean> {
  const stat = await readProcStat(pid, procDir);
  return stat !== undefined && stat.startTime === startTime && stat.state !== "Z" && stat.state !== "X";
}
