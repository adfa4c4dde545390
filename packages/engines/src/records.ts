import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** What the agent keeps about an engine it started, so status and stop work after an agent restart. */
export interface EngineRecord {
  engine: string;
  pid: number;
  /** /proc/<pid>/stat start time: a pid the kernel reused for another process is never taken for the engine. */
  startTime: string;
  port: number;
  command: string[];
  logFile: string;
  /** ISO time the agent started it. */
  startedAt: string;
}

/** `<stateDir>/engines/<engine>.json`, written atomically. */
export class EngineRecords {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "engines");
  }

  file(engine: string): string {
    return join(this.dir, `${engine}.json`);
  }

  logFile(engine: string): string {
    return join(this.dir, `${engine}.log`);
  }

  async read(engine: string): Promise<EngineRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(engine), "utf8");
    } catch {
      return undefined;
    }
    try {
      const value = JSON.parse(text) as Partial<EngineRecord>;
      if (typeof value.pid !== "number" || !Number.isInteger(value.pid) || value.pid <= 0) return undefined;
      if (typeof value.startTime !== "string" || typeof value.port !== "number") return undefined;
      return {
        engine,
        pid: value.pid,
        startTime: value.startTime,
        port: value.port,
        command: Array.isArray(value.command) ? value.command.map(String) : [],
        logFile: typeof value.logFile === "string" ? value.logFile : this.logFile(engine),
        startedAt: typeof value.startedAt === "string" ? value.startedAt : "",
      };
    } catch {
      // A torn or foreign file says nothing reliable about a process.
      return undefined;
    }
  }

  async write(record: EngineRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file(record.engine)}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
    await rename(tmp, this.file(record.engine));
  }

  async remove(engine: string): Promise<void> {
    await rm(this.file(engine), { force: true });
  }
}
