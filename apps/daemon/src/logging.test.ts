import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";

import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { createAgentLogger } from "./logging.js";
import { prettyLine } from "./pretty-log.js";
import { claimPidFile, isAgentProcess, readPid } from "./pid-file.js";
import { RotatingFile } from "./rotating-file.js";

const tempDir = useTempDir(afterEach);

describe("createAgentLogger", () => {
  it("writes JSON lines to stdout and the file, with secrets scrubbed", async () => {
    const dir = await tempDir();
    const out = new PassThrough();
    let text = "";
    out.on("data", (c: Buffer) => (text += c.toString()));
    const log = createAgentLogger({ level: "info", file: join(dir, "logs", "agent.log"), stdout: out, secrets: ["tok-secret-1"] });
    log.info("registered with tok-secret-1 inside", { token: "tok-secret-1", nested: { note: "x tok-secret-1" } });
    log.debug("hidden at info level");
    log.child({ job: "c1" }).warn("child line");
    log.flush();
    await new Promise((r) => setTimeout(r, 20));
    const lines = text.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: "info", msg: "registered with *** inside", token: "***", nested: { note: "x ***" }, name: "kitt-agent" });
    expect(lines[1]).toMatchObject({ level: "warn", msg: "child line", job: "c1" });
    const file = await readFile(join(dir, "logs", "agent.log"), "utf8");
    expect(file).not.toContain("tok-secret-1");
    expect(file.trim().split("\n")).toHaveLength(2);
    expect((await stat(join(dir, "logs", "agent.log"))).mode & 0o777).toBe(0o600);
  });

  it("keeps pino's line shape, censors credentials in fields and bindings, and never throws on a field JSON cannot hold", () => {
    const out = new PassThrough();
    let text = "";
    out.on("data", (c: Buffer) => (text += c.toString()));
    const log = createAgentLogger({ level: "debug", stdout: out });
    log.debug("with headers", { headers: { authorization: "Bearer abc", accept: "x" }, authorization: "Bearer abc" });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    log.child({ component: "api", token: "child-token" }).error("odd fields", { big: 10n, cyclic });
    const lines = text.trim().split("\n");
    expect(lines[0]).toMatch(/^\{"level":"debug","time":"\d{4}-\d\d-\d\dT[\d:.]+Z","name":"kitt-agent","headers":\{"authorization":"\*\*\*","accept":"x"\},"authorization":"\*\*\*","msg":"with headers"\}$/);
    expect(JSON.parse(lines[1] as string)).toMatchObject({
      level: "error",
      component: "api",
      token: "***",
      msg: "odd fields",
      log_error: expect.stringMatching(/^fields not serialisable: /),
    });
    expect(text).not.toContain("abc");
    expect(text).not.toContain("child-token");
  });
});

describe("RotatingFile", () => {
  it("pretty: readable lines on stdout (time, level, component, message, extra fields), JSON in the file, secrets still scrubbed", async () => {
    const dir = await tempDir();
    const out = new PassThrough();
    let text = "";
    out.on("data", (c: Buffer) => (text += c.toString()));
    const log = createAgentLogger({ level: "info", format: "pretty", file: join(dir, "agent.log"), stdout: out, secrets: ["tok-secret-1"] });
    log.child({ component: "runner" }).info("job c1 started: host pid 42", { token: "tok-secret-1", attempt: 2 });
    log.error("no component here");
    log.flush();
    await new Promise((r) => setTimeout(r, 20));
    expect(text.split("\n")).toEqual([
      expect.stringMatching(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}runner: job c1 started: host pid 42 {2}token=\*\*\* attempt=2$/),
      expect.stringMatching(/^\d\d:\d\d:\d\d\.\d{3} ERROR no component here$/),
      "",
    ]);
    const file = (await readFile(join(dir, "agent.log"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(file[0]).toMatchObject({ level: "info", component: "runner", msg: "job c1 started: host pid 42", token: "***" });
    // Colour only when asked; something that is not a JSON record passes through.
    expect(prettyLine('{"level":"warn","time":"2026-12-03T17:05:01.123Z","msg":"m"}', true)).toBe("17:05:01.123 \x1b[33mWARN \x1b[0m m");
    expect(prettyLine("not json")).toBe("not json");
  });

  it("rotates by size and keeps N old files", async () => {
    const dir = await tempDir();
    const path = join(dir, "agent.log");
    const f = new RotatingFile(path, { maxBytes: 100, keep: 2 });
    for (let i = 0; i < 10; i++) f.write(`${String(i).repeat(39)}\n`);
    await new Promise<void>((r) => f.end(r));
    expect((await readdir(dir)).sort()).toEqual(["agent.log", "agent.log.1", "agent.log.2"]);
    for (const name of ["agent.log", "agent.log.1", "agent.log.2"]) expect((await stat(join(dir, name))).size).toBeLessThanOrEqual(100);
    // 40-byte lines, 100-byte files: two lines per file, the oldest generations dropped.
    expect(await readFile(path, "utf8")).toBe(`${"8".repeat(39)}\n${"9".repeat(39)}\n`);
    expect(await readFile(`${path}.1`, "utf8")).toBe(`${"6".repeat(39)}\n${"7".repeat(39)}\n`);
    expect(await readFile(`${path}.2`, "utf8")).toBe(`${"4".repeat(39)}\n${"5".repeat(39)}\n`);
  });
});

describe("pid file", () => {
  it("claims, refuses a live agent, replaces a stale file, releases only its own", async () => {
    const dir = await tempDir();
    const path = join(dir, "agent.pid");
    const release = await claimPidFile(path, { pid: 4242, isAgent: () => false });
    expect(await readPid(path)).toBe(4242);
    await expect(claimPidFile(path, { pid: 5000, isAgent: (p) => p === 4242 })).rejects.toThrow(
      `kitt-agent is already running (pid 4242, ${path}); stop it first with kitt-agent stop`,
    );
    // Stale: the pid is not an agent any more.
    const release2 = await claimPidFile(path, { pid: 5000, isAgent: () => false });
    await release();
    expect(await readPid(path)).toBe(5000);
    await release2();
    expect(await readPid(path)).toBeUndefined();
  });

  it("garbage in the pid file counts as stale", async () => {
    const dir = await tempDir();
    const path = join(dir, "agent.pid");
    await writeFile(path, "not a pid");
    await claimPidFile(path, { pid: 7 });
    expect(await readPid(path)).toBe(7);
  });

  it("isAgentProcess looks at the real /proc, and wants a node process running the marker", async () => {
    expect(isAgentProcess(process.pid, ["vitest"])).toBe(true);
    // A non-node process whose arguments mention kitt-agent (journalctl -u kitt-agent) is not an agent.
    const { spawn } = await import("node:child_process");
    const other = spawn("sh", ["-c", "sleep 30; true", "kitt-agent"], { stdio: "ignore" });
    try {
      await new Promise((r) => setTimeout(r, 50));
      const { readFileSync } = await import("node:fs");
      expect(readFileSync(`/proc/${other.pid}/cmdline`, "utf8")).toContain("kitt-agent");
      expect(isAgentProcess(other.pid!)).toBe(false);
      expect(isAgentProcess(other.pid!, ["kitt-agent"])).toBe(false);
    } finally {
      other.kill("SIGKILL");
    }
    expect(isAgentProcess(process.pid, ["definitely-not-this"])).toBe(false);
    // An agent that took the title kitt-agent has only that left in /proc/<pid>/cmdline: still an agent.
    const titled = spawn(process.execPath, ["-e", 'process.title = "kitt-agent"; console.log("titled"); setTimeout(() => {}, 30000)'], { stdio: ["ignore", "pipe", "ignore"] });
    try {
      await new Promise((r) => titled.stdout.once("data", r));
      const { readFileSync } = await import("node:fs");
      expect(readFileSync(`/proc/${titled.pid}/cmdline`, "utf8").replace(/\0+$/, "")).toBe("kitt-agent");
      expect(isAgentProcess(titled.pid!)).toBe(true);
    } finally {
      titled.kill("SIGKILL");
    }
    expect(isAgentProcess(2 ** 30)).toBe(false);
    expect(isAgentProcess(-1)).toBe(false);
  });
});
