/**
 * Test support for tests against the real Docker engine: whether one answers
 * (skip with one line when not, fail under CI=true), and tiny throw-away
 * images made with `docker import` of a one-file tar, so that no registry is
 * needed.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { DockerRuntime } from "./docker-runtime.js";

const run = promisify(execFile);

/**
 * True when the engine of this process's DOCKER_HOST answers. Otherwise a
 * test file skips its real-engine tests with one stderr line, except under
 * CI=true, where a missing engine is a broken CI machine and throws.
 */
export async function realEngineAvailable(what: string): Promise<boolean> {
  try {
    await new DockerRuntime({ callTimeoutMs: 5000 }).info();
    return true;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    if (process.env.CI === "true") throw new Error(`CI=true but no Docker engine answers for ${what}: ${why}`, { cause: error });
    process.stderr.write(`skipping ${what} against the real Docker engine: ${why}\n`);
    return false;
  }
}

export function randomSuffix(): string {
  return randomBytes(4).toString("hex");
}

/** A POSIX tar holding one small regular file, written by hand (no tar binary needed). */
export function oneFileTar(name: string, content: string): Buffer {
  const body = Buffer.from(content);
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string): void => void header.write(value, offset, length, "ascii");
  field(0, 100, name);
  field(100, 8, "0000644\0");
  field(108, 8, "0000000\0");
  field(116, 8, "0000000\0");
  field(124, 12, `${body.length.toString(8).padStart(11, "0")}\0`);
  field(136, 12, `${Math.floor(Date.now() / 1000).toString(8).padStart(11, "0")}\0`);
  field(148, 8, "        ");
  field(156, 1, "0");
  field(257, 6, "ustar\0");
  field(263, 2, "00");
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  const padding = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([header, body, padding, Buffer.alloc(1024)]);
}

async function docker(args: string[]): Promise<string> {
  const { stdout } = await run("docker", args, { timeout: 60_000 });
  return stdout.trim();
}

/** Imports a one-file image tagged `ref` into the real engine. */
export async function importTinyImage(ref: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "kitt-image-"));
  try {
    const tarPath = join(dir, "rootfs.tar");
    await writeFile(tarPath, oneFileTar("hello.txt", "hello from a kitt test image\n"));
    await docker(["import", tarPath, ref]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function tagImage(source: string, target: string): Promise<void> {
  await docker(["tag", source, target]);
}

/** Removes tags (the image goes with its last tag); a tag already gone is fine. */
export async function removeTags(...refs: string[]): Promise<void> {
  for (const ref of refs) {
    try {
      await docker(["rmi", ref]);
    } catch {
      // Already removed.
    }
  }
}
