/**
 * Test support: a fake machine made of real files and real executables. The
 * files go under a temp `root` that detection reads instead of "/"; the
 * commands are shell scripts in a temp bin dir that is the whole PATH, so a
 * test sees exactly the tools it wrote and nothing from the real machine.
 */
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { makeTempDir, type TempDir } from "@kitt/testkit";
import { createHostProbe, type HostOs, type HostProbe } from "./host.js";

export const SLEEP = ["/bin/sleep", "/usr/bin/sleep"].find((p) => existsSync(p)) ?? "sleep";

export interface FakeCommand {
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  /** Sleep this many seconds before answering (a wedged driver). */
  hangSeconds?: number;
  /** Answer per first argument, e.g. `{ "--version": ... }`; falls back to the top level. */
  byArgs?: Array<{ match: string; stdout?: string; stderr?: string; exitCode?: number }>;
}

function quote(text: string): string {
  return `'${text.replace(/'/g, `'"'"'`)}'`;
}

/** Writes an executable that logs its arguments to `<path>.calls` and answers as told. */
export async function writeFakeCommand(binDir: string, name: string, spec: FakeCommand): Promise<string> {
  const path = join(binDir, name);
  const lines = ["#!/bin/sh", `printf '%s\\n' "$*" >> ${quote(`${path}.calls`)}`];
  for (const rule of spec.byArgs ?? []) {
    lines.push(`case "$*" in *${quote(rule.match)}*)`);
    if (rule.stdout !== undefined) lines.push(`  printf '%s' ${quote(rule.stdout)}`);
    if (rule.stderr !== undefined) lines.push(`  printf '%s' ${quote(rule.stderr)} >&2`);
    lines.push(`  exit ${rule.exitCode ?? 0};;`, "esac");
  }
  if (spec.hangSeconds !== undefined) lines.push(`${SLEEP} ${spec.hangSeconds}`);
  if (spec.stdout !== undefined) lines.push(`printf '%s' ${quote(spec.stdout)}`);
  if (spec.stderr !== undefined) lines.push(`printf '%s' ${quote(spec.stderr)} >&2`);
  lines.push(`exit ${spec.exitCode ?? 0}`);
  await writeFile(path, `${lines.join("\n")}\n`);
  await chmod(path, 0o755);
  return path;
}

/** The argument lines a fake command was called with, oldest first. */
export async function fakeCommandCalls(binDir: string, name: string): Promise<string[]> {
  try {
    return (await readFile(join(binDir, `${name}.calls`), "utf8")).split("\n").filter((l) => l !== "");
  } catch {
    return [];
  }
}

export interface FakeMachine {
  root: string;
  bin: string;
  host: HostProbe;
  /** Adds or replaces a file under the root. */
  file(path: string, content: string): Promise<void>;
  command(name: string, spec: FakeCommand): Promise<string>;
  cleanup(): Promise<void>;
}

export const LINUX_OS: HostOs = {
  platform: "linux",
  machine: "x86_64",
  type: "Linux",
  release: "6.8.0-45-generic",
  version: "#45-Ubuntu SMP PREEMPT_DYNAMIC Fri Aug 30 12:02:04 UTC 2024",
  hostname: "gpu-host-01",
  totalMemBytes: 0,
  cpuModel: "",
  cpuCount: 0,
};

export async function makeFakeMachine(
  options: {
    files?: Record<string, string>;
    commands?: Record<string, FakeCommand>;
    os?: Partial<HostOs>;
    env?: Record<string, string>;
    commandTimeoutMs?: number;
  } = {},
): Promise<FakeMachine> {
  const dir: TempDir = await makeTempDir("kitt-hw-");
  const root = join(dir.path, "root");
  const bin = join(dir.path, "bin");
  await mkdir(root, { recursive: true });
  await mkdir(bin, { recursive: true });
  const file = async (path: string, content: string): Promise<void> => {
    const target = join(root, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, content);
  };
  for (const [path, content] of Object.entries(options.files ?? {})) await file(path, content);
  for (const [name, spec] of Object.entries(options.commands ?? {})) await writeFakeCommand(bin, name, spec);
  const host = createHostProbe({
    root,
    env: { PATH: bin, ...options.env },
    os: { ...LINUX_OS, ...options.os },
    commandTimeoutMs: options.commandTimeoutMs ?? 5000,
  });
  return {
    root,
    bin,
    host,
    file,
    command: (name, spec) => writeFakeCommand(bin, name, spec),
    cleanup: () => dir.cleanup(),
  };
}
