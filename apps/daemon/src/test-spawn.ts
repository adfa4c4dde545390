/** Runs the built daemon in a child process, exactly as `kitt-agent start` would, for crash and signal tests. */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import type { Readable } from "node:stream";

const DIST = new URL("../dist/index.js", import.meta.url).pathname;

/** `extra` (JSON-serialisable StartAgentOptions, e.g. apiLimits) is merged into the daemon's options. */
export function spawnAgent(configPath: string, extra: Record<string, unknown> = {}): ChildProcessByStdio<null, Readable, Readable> {
  if (!existsSync(DIST)) throw new Error(`build @kitt/daemon first (${DIST} is missing)`);
  const script = `
    import { readFileSync } from "node:fs";
    import { startAgent } from ${JSON.stringify(DIST)};
    import { sleep } from "@kitt/protocol";
    const config = JSON.parse(readFileSync(${JSON.stringify(configPath)}, "utf8"));
    const agent = await startAgent(config, { detect: { nvml: false }, handleSignals: true,
      heartbeat: { sleep: (ms, signal) => sleep(Math.min(ms, 30), signal) }, ...${JSON.stringify(extra)} });
    console.log("READY " + agent.url);
    await agent.done;
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: new URL("..", import.meta.url).pathname,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  child.stderr.on("data", () => {});
  return child;
}

/** SIGKILL to the process group `pid` leads (the spawned agent), ignoring one already gone. */
export function killProcessTree(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** The local API's URL once the spawned agent printed READY; rejects if it exits first. */
export function agentReady(child: ChildProcessByStdio<null, Readable, Readable>): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /READY (\S+)/.exec(out);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`agent exited with ${code} before it was ready`)));
  });
}
