import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import { libraryFindable } from "./library-search.js";

const roots: string[] = [];
afterEach(async () => {
  for (const r of roots.splice(0)) await rm(r, { recursive: true, force: true });
});

async function fakeRoot(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "kitt-ldroot-"));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(root, path, ".."), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

const SO = "libnvidia-ml.so.1";

describe("libraryFindable (is there an NVML for dlopen to find, asked without koffi)", () => {
  it("finds the soname in the loader's cache, a trusted dir, an ld.so.conf include, or LD_LIBRARY_PATH", async () => {
    expect(libraryFindable(SO, {}, await fakeRoot({ "/etc/ld.so.cache": `glibc-ld.so.cache1.1\0libc.so.6\0${SO}\0/usr/lib/x86_64-linux-gnu/${SO}\0` }))).toBe(true);
    expect(libraryFindable(SO, {}, await fakeRoot({ [`/usr/lib/x86_64-linux-gnu/${SO}`]: "elf" }))).toBe(true);
    expect(libraryFindable(SO, {}, await fakeRoot({ [`/usr/lib64/${SO}`]: "elf" }))).toBe(true);
    const conf = await fakeRoot({
      "/etc/ld.so.conf": "# comment\ninclude /etc/ld.so.conf.d/*.conf\n",
      "/etc/ld.so.conf.d/nvidia.conf": "/usr/local/nvidia/lib64 # the toolkit's\n",
      "/etc/ld.so.conf.d/other.txt": "/opt/not-read\n",
      [`/usr/local/nvidia/lib64/${SO}`]: "elf",
    });
    expect(libraryFindable(SO, {}, conf)).toBe(true);
    const notConf = await fakeRoot({ "/etc/ld.so.conf": "include /etc/ld.so.conf.d/*.conf\n", "/etc/ld.so.conf.d/other.txt": "/opt/lib\n", [`/opt/lib/${SO}`]: "elf" });
    expect(libraryFindable(SO, {}, notConf)).toBe(false);
    const env = await fakeRoot({ [`/opt/drivers/${SO}`]: "elf" });
    expect(libraryFindable(SO, { LD_LIBRARY_PATH: "relative:/opt/drivers" }, env)).toBe(true);
    expect(libraryFindable(SO, {}, env)).toBe(false);
  });

  it("says no on a host without it (cache without the name, empty dirs, looping includes)", async () => {
    const root = await fakeRoot({
      "/etc/ld.so.cache": "glibc-ld.so.cache1.1\0libc.so.6\0",
      "/etc/ld.so.conf": "include ld.so.conf\n",
      "/usr/lib/libc.so.6": "elf",
    });
    expect(libraryFindable(SO, {}, root)).toBe(false);
    expect(libraryFindable("/nonexistent/libnvidia-ml.so.1", {}, root)).toBe(false);
  });

  it("agrees with this machine's own loader about a library it has and one it lacks", () => {
    // ldconfig -p lists what the cache holds; the check must find libc and not a made-up soname.
    const listed = spawnSync("ldconfig", ["-p"], { encoding: "utf8" });
    const libc = /\s(libc\.so\.6)\s/.exec(listed.stdout ?? "")?.[1];
    if (libc !== undefined) expect(libraryFindable(libc)).toBe(true);
    expect(libraryFindable("libkitt-surely-absent.so.9")).toBe(false);
  });
});
