import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createEngineDriver, type EngineDriver, type EngineDriverOptions } from "./engine-driver.js";

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** True while a process with this pid runs (a zombie its parent has not reaped yet is dead). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** A driver whose PATH is only `<root>/bin`, state under `<root>/state`, home `<root>/home`; never asks the real systemctl. */
export function driverIn(root: string, engine: string, options: Partial<EngineDriverOptions> = {}): EngineDriver {
  return createEngineDriver(engine, {
    stateDir: join(root, "state"),
    home: join(root, "home"),
    env: { PATH: join(root, "bin") },
    pythons: [join(root, "bin", "python")],
    systemctl: null,
    pollMs: 50,
    stopGraceMs: 2_000,
    readyTimeoutMs: 15_000,
    ...options,
  });
}
