import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, link, lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";

import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { createAgentLogger } from "./logging.js";
import { claimPidFile, readPid } from "./pid-file.js";
import { RotatingFile } from "./rotating-file.js";
import { checkStateDir, readSmallRegularFile } from "./state-dir.js";
import { closeWorld, makeWorld, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
});

const VICTIM_TEXT = "a file of someone else's\n";

/** A file outside the state dir that a planted link points at: it must never change. */
async function victim(dir: string): Promise<string> {
  const path = join(dir, "victim.txt");
  await writeFile(path, VICTIM_TEXT, { mode: 0o644 });
  return path;
}

function mkfifo(path: string): void {
  execFileSync("mkfifo", [path]);
}

const uid = process.getuid?.() ?? 0;

describe("checkStateDir", () => {
  it("creates a missing state dir (and its parents) with mode 0700", async () => {
    const dir = join(await tempDir(), "a", "b", ".kitt");
    checkStateDir(dir);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, ".."))).mode & 0o777).toBe(0o700);
  });

  it.each([0o775, 0o757, 0o1777, 0o720])("refuses a state dir of mode %s with one line naming the dir, its mode and chmod 700", async (mode) => {
    const dir = join(await tempDir(), "state");
    await mkdir(dir);
    await chmod(dir, mode);
    expect(() => checkStateDir(dir)).toThrow(`state dir ${dir} is mode 0${mode.toString(8)}, writable by group or others: run chmod 700 ${dir}`);
    await chmod(dir, 0o755);
    expect(() => checkStateDir(dir)).not.toThrow();
  });

  it("refuses a state dir owned by another user", async () => {
    // As root a temp dir is handed to nobody; otherwise / is another user's (root's) directory.
    let dir = "/";
    if (uid === 0) {
      dir = join(await tempDir(), "state");
      await mkdir(dir, { mode: 0o700 });
      await chown(dir, 65534, 65534);
    }
    const owner = (await stat(dir)).uid;
    expect(() => checkStateDir(dir)).toThrow(
      `state dir ${dir} is owned by uid ${owner}, not by this user (uid ${uid}): run chown ${uid} ${dir}, or set state_dir to a directory of your own`,
    );
  });

  it("refuses a file where the state dir should be, and follows a link at the state dir itself to check its target", async () => {
    const base = await tempDir();
    await writeFile(join(base, "file"), "x");
    expect(() => checkStateDir(join(base, "file"))).toThrow(`state dir ${join(base, "file")} is not a directory`);
    await mkdir(join(base, "real"), { mode: 0o777 });
    await chmod(join(base, "real"), 0o777);
    await symlink(join(base, "real"), join(base, "link"));
    expect(() => checkStateDir(join(base, "link"))).toThrow(`state dir ${join(base, "link")} is mode 0777`);
  });
});

describe("agent.log never follows a planted name", () => {
  it("refuses a symlink at agent.log with one line and leaves its target alone", async () => {
    const dir = await tempDir();
    const target = await victim(dir);
    await mkdir(join(dir, "state", "logs"), { recursive: true, mode: 0o700 });
    const log = join(dir, "state", "logs", "agent.log");
    await symlink(target, log);
    expect(() => createAgentLogger({ level: "info", file: log, stdout: new PassThrough() })).toThrow(
      `${log} is a symbolic link: the agent opens no links in its state dir; remove it`,
    );
    expect(await readFile(target, "utf8")).toBe(VICTIM_TEXT);
    // A dangling link is refused too (O_CREAT alone would create its target).
    const dangling = join(dir, "state", "logs", "dangling.log");
    await symlink(join(dir, "nowhere", "..", "created-by-agent"), dangling);
    expect(() => new RotatingFile(dangling)).toThrow(/is a symbolic link/);
    expect(existsSync(join(dir, "created-by-agent"))).toBe(false);
  });

  it("refuses a FIFO, a hard link to another file and a logs/ dir that is a link", async () => {
    const dir = await tempDir();
    const logs = join(dir, "state", "logs");
    await mkdir(logs, { recursive: true, mode: 0o700 });
    mkfifo(join(logs, "fifo.log"));
    // No reader: an O_NONBLOCK open for writing fails at once instead of hanging.
    expect(() => new RotatingFile(join(logs, "fifo.log"))).toThrow(`${join(logs, "fifo.log")} is not a regular file (a FIFO?): remove it`);
    const target = await victim(dir);
    await link(target, join(logs, "hard.log"));
    expect(() => new RotatingFile(join(logs, "hard.log"))).toThrow(`${join(logs, "hard.log")} has 2 hard links: the agent writes only files of its own; remove it`);
    expect(await readFile(target, "utf8")).toBe(VICTIM_TEXT);

    const elsewhere = join(dir, "elsewhere");
    await mkdir(elsewhere, { mode: 0o700 });
    await mkdir(join(dir, "state2"), { mode: 0o700 });
    await symlink(elsewhere, join(dir, "state2", "logs"));
    expect(() => new RotatingFile(join(dir, "state2", "logs", "agent.log"))).toThrow(
      `${join(dir, "state2", "logs")} is a symbolic link: the agent does not follow links in its state dir; remove it`,
    );
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it("rotation replaces links planted at the rotated names instead of following them", async () => {
    const dir = await tempDir();
    const target = await victim(dir);
    const logs = join(dir, "logs");
    const path = join(logs, "agent.log");
    const f = new RotatingFile(path, { maxBytes: 100, keep: 2 });
    await symlink(target, `${path}.1`);
    await symlink(target, `${path}.2`);
    for (let i = 0; i < 10; i++) f.write(`${String(i).repeat(39)}\n`);
    await new Promise<void>((r) => f.end(r));
    expect(await readFile(target, "utf8")).toBe(VICTIM_TEXT);
    for (const name of ["agent.log", "agent.log.1", "agent.log.2"]) expect((await lstat(join(logs, name))).isFile()).toBe(true);
    expect(await readFile(path, "utf8")).toBe(`${"8".repeat(39)}\n${"9".repeat(39)}\n`);
    expect(f.droppedLines).toBe(0);
    expect((await stat(logs)).mode & 0o777).toBe(0o700);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it("a rotation that fails keeps every line in the current file and says so once, without stopping the agent", async () => {
    const dir = await tempDir();
    const out = new PassThrough();
    let text = "";
    out.on("data", (c: Buffer) => (text += c.toString()));
    const path = join(dir, "logs", "agent.log");
    const log = createAgentLogger({ level: "info", file: path, stdout: out, maxFileBytes: 300, keepFiles: 1 });
    // A directory where the oldest generation goes: rotation cannot remove it.
    await mkdir(join(dir, "logs", "agent.log.1", "x"), { recursive: true });
    for (let i = 0; i < 6; i++) log.info(`line ${i} ${"x".repeat(80)}`);
    log.flush();
    await new Promise((r) => setTimeout(r, 20));
    const errors = text.split("\n").filter((l) => l.includes('"level":"error"'));
    expect(errors).toHaveLength(1);
    expect(JSON.parse(errors[0] as string)).toMatchObject({ msg: expect.stringMatching(new RegExp(`^${path}: .* \\(every log line still goes to stdout\\)$`)) });
    const lines = (await readFile(path, "utf8")).trim().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg.slice(0, 6))).toEqual(["line 0", "line 1", "line 2", "line 3", "line 4", "line 5"]);
  });
});

describe("pid file never follows a planted name", () => {
  it("a link planted at the temp name is replaced, not written through", async () => {
    const dir = await tempDir();
    const target = await victim(dir);
    const path = join(dir, "agent.pid");
    await symlink(target, join(dir, ".agent.pid.4242.tmp"));
    const release = await claimPidFile(path, { pid: 4242, isAgent: () => false });
    expect(await readFile(target, "utf8")).toBe(VICTIM_TEXT);
    expect(await readPid(path)).toBe(4242);
    expect((await lstat(path)).isFile()).toBe(true);
    expect(existsSync(join(dir, ".agent.pid.4242.tmp"))).toBe(false);
    await release();
    expect(existsSync(path)).toBe(false);
  });

  it("a link at agent.pid is not read through and is replaced by the agent's own file", async () => {
    const dir = await tempDir();
    const target = join(dir, "looks-like-a-pid");
    await writeFile(target, `${process.pid}\n`);
    const path = join(dir, "agent.pid");
    await symlink(target, path);
    // Read through the link, this would name a live agent (the test runner) and refuse.
    expect(await readPid(path)).toBeUndefined();
    const release = await claimPidFile(path, { pid: 5151, isAgent: (p) => p === process.pid });
    expect(await readFile(target, "utf8")).toBe(`${process.pid}\n`);
    expect((await lstat(path)).isSymbolicLink()).toBe(false);
    expect(await readPid(path)).toBe(5151);
    await release();
  });

  it("a FIFO at agent.pid is read as no pid at once, not waited on", async () => {
    const dir = await tempDir();
    const path = join(dir, "agent.pid");
    mkfifo(path);
    expect(() => readSmallRegularFile(path)).toThrow(`${path} is not a regular file: remove it`);
    expect(await readPid(path)).toBeUndefined();
    const release = await claimPidFile(path, { pid: 6161, isAgent: () => false });
    expect(await readPid(path)).toBe(6161);
    await release();
  });
});

describe("startAgent checks the state dir before it writes anything there", () => {
  async function world(): Promise<World> {
    const w = await makeWorld(await tempDir());
    worlds.push(w);
    return w;
  }

  it("refuses a group-writable state dir: one line, nothing written in it", async () => {
    const w = await world();
    await chmod(w.config.state_dir, 0o770);
    await expect(w.start()).rejects.toThrow(`state dir ${w.config.state_dir} is mode 0770, writable by group or others: run chmod 700 ${w.config.state_dir}`);
    expect(await readdir(w.config.state_dir)).toEqual([]);
  });

  it("creates a missing state dir 0700 and starts; planted links at its names are not followed", async () => {
    const w = await world();
    const target = await victim(w.dir);
    const state = join(w.dir, "fresh-state");
    w.config.state_dir = state;
    const first = await w.start();
    expect((await stat(state)).mode & 0o777).toBe(0o700);
    await first.stop();
    // What another process could plant while the agent is down (the dir is the user's own now).
    await symlink(target, join(state, "agent.pid"));
    const agent = await w.start();
    expect(await readPid(join(state, "agent.pid"))).toBe(process.pid);
    expect((await lstat(join(state, "agent.pid"))).isFile()).toBe(true);
    expect(await readFile(target, "utf8")).toBe(VICTIM_TEXT);
    await agent.stop();
    expect(existsSync(join(state, "agent.pid"))).toBe(false);
  });
});
