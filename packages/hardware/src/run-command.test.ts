import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCommand, succeeded } from "./run-command.js";
import { makeFakeMachine, SLEEP, writeFakeCommand, type FakeMachine } from "./test-host.js";
import { findOnPath } from "./which.js";

let machine: FakeMachine | undefined;
afterEach(async () => {
  await machine?.cleanup();
  machine = undefined;
});

async function fake(): Promise<FakeMachine> {
  machine = await makeFakeMachine();
  return machine;
}

/** Running, not merely a zombie waiting for a reaper (PID 1 in a container may never reap). */
async function running(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

describe("runCommand", () => {
  it("captures stdout and stderr of a successful command, with an argument array", async () => {
    const m = await fake();
    await writeFakeCommand(m.bin, "tool", { stdout: "out with 'quotes' and $HOME\n", stderr: "note\n" });
    const result = await runCommand("tool", ["a b", "--x=1"], { timeoutMs: 5000, env: m.host.env });
    expect(succeeded(result)).toBe(true);
    expect(result).toMatchObject({ exitCode: 0, stdout: "out with 'quotes' and $HOME\n", stderr: "note\n" });
    expect(result.failure).toBeUndefined();
    expect(await readFile(join(m.bin, "tool.calls"), "utf8")).toBe("a b --x=1\n");
  });

  it("names the command, its exit code and its first diagnostic line on failure", async () => {
    const m = await fake();
    await writeFakeCommand(m.bin, "tool", { stderr: "\n  boom: it broke\nmore\n", exitCode: 3 });
    const result = await runCommand("tool", [], { timeoutMs: 5000, env: m.host.env });
    expect(succeeded(result)).toBe(false);
    expect(result).toMatchObject({ exitCode: 3, failure: "exit", message: "tool exited with code 3: boom: it broke" });
  });

  it("reports a command missing from PATH as not-found", async () => {
    const m = await fake();
    const result = await runCommand("nvidia-smi", ["-L"], { timeoutMs: 5000, env: m.host.env });
    expect(result).toMatchObject({ exitCode: null, failure: "not-found", message: "nvidia-smi: not found on PATH" });
  });

  it("settles at the timeout and kills the command's whole process group", async () => {
    const m = await fake();
    const pidFile = join(m.bin, "child.pid");
    // A wrapper whose grandchild would outlive a plain kill of the wrapper.
    await writeFile(join(m.bin, "wedged"), `#!/bin/sh\n${SLEEP} 30 &\necho $! > ${pidFile}\nwait\n`, { mode: 0o755 });
    const result = await runCommand("wedged", [], { timeoutMs: 300, env: m.host.env });
    expect(result).toMatchObject({ failure: "timeout", exitCode: null, message: "wedged timed out after 300 ms" });
    const pid = Number((await readFile(pidFile, "utf8")).trim());
    // SIGKILL delivery is asynchronous: poll briefly rather than sleep.
    for (let i = 0; i < 100 && (await running(pid)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await running(pid)).toBe(false);
  });

  it("keeps at most maxOutputBytes of each stream", async () => {
    const m = await fake();
    await writeFakeCommand(m.bin, "chatty", { stdout: "x".repeat(5000) });
    const result = await runCommand("chatty", [], { timeoutMs: 5000, env: m.host.env, maxOutputBytes: 100 });
    expect(result.stdout).toBe("x".repeat(100));
  });
});

describe("findOnPath", () => {
  it("finds executables on PATH only, and checks paths given with a slash", async () => {
    const m = await fake();
    const tool = await writeFakeCommand(m.bin, "kitt", {});
    await writeFile(join(m.bin, "not-executable"), "x");
    expect(await findOnPath("kitt", m.host.env)).toBe(tool);
    expect(await findOnPath("not-executable", m.host.env)).toBeUndefined();
    expect(await findOnPath("absent", m.host.env)).toBeUndefined();
    expect(await findOnPath(tool, {})).toBe(tool);
    expect(await findOnPath(join(m.bin, "absent"), {})).toBeUndefined();
    expect(await findOnPath("kitt", {})).toBeUndefined();
  });
});
