import { existsSync } from "node:fs";
import { lstat, readFile, readlink, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

import { KITT_BUILD_CONTEXT_DOCKERFILE, makeKittBuildContext, useTempDir } from "@kitt/testkit";
import { Header, Parser, type ReadEntry } from "tar";
import { afterEach, describe, expect, it } from "vitest";

import { BuildContextError, packContext, unpackBuildContext } from "./build-context.js";

const tempDir = useTempDir(afterEach);

interface Entry {
  path: string;
  type?: ReadEntry["type"];
  body?: string;
  linkpath?: string;
  mode?: number;
}

/** A gzipped tar written header by header with node-tar's Header: whatever names and types a test wants. */
function tarball(entries: Entry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? "");
    const type = e.type ?? "File";
    const header = new Header({
      path: e.path,
      type,
      size: body.length,
      mode: e.mode ?? (type === "Directory" ? 0o755 : 0o644),
      uid: 0,
      gid: 0,
      mtime: new Date(0),
      ...(e.linkpath !== undefined ? { linkpath: e.linkpath } : {}),
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

const DOCKERFILE: Entry = { path: "kitt-build-context/docker/web/Dockerfile", body: "FROM scratch\n" };

async function archive(data: Buffer): Promise<{ tgz: string; dest: string }> {
  const dir = await tempDir();
  const tgz = join(dir, "context.tar.gz");
  await writeFile(tgz, data);
  return { tgz, dest: join(dir, "out") };
}

async function refused(entries: Entry[] | Buffer, limits?: Parameters<typeof unpackBuildContext>[2]): Promise<string> {
  const { tgz, dest } = await archive(Buffer.isBuffer(entries) ? entries : tarball(entries));
  let error: unknown;
  try {
    await unpackBuildContext(tgz, dest, limits);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(BuildContextError);
  const message = (error as Error).message;
  expect(message).not.toContain("\n");
  // Refused before a byte is written.
  expect(existsSync(dest)).toBe(false);
  return message;
}

describe("unpackBuildContext", () => {
  it("unpacks a good context: files, directories, a symlink inside, the Dockerfile", async () => {
    const { tgz, dest } = await archive(await makeKittBuildContext());
    const ctx = await unpackBuildContext(tgz, dest);
    expect(ctx.contextDir).toBe(join(dest, "kitt-build-context"));
    expect(ctx.dockerfile).toBe("docker/web/Dockerfile");
    expect(await readFile(join(ctx.contextDir, "docker/web/Dockerfile"), "utf8")).toBe(KITT_BUILD_CONTEXT_DOCKERFILE);
    expect(await readlink(join(ctx.contextDir, "bin/sh"))).toBe("busybox");
    expect((await lstat(join(ctx.contextDir, "bin/kitt"))).mode & 0o777).toBe(0o755);
    expect(ctx.bytes).toBeGreaterThan(100_000);
    expect(ctx.entries).toBeGreaterThanOrEqual(7);
  });

  it("accepts ./-prefixed names and the archive's own . entry", async () => {
    const { tgz, dest } = await archive(
      tarball([{ path: "./", type: "Directory" }, { path: "./kitt-build-context/", type: "Directory" }, { ...DOCKERFILE, path: `./${DOCKERFILE.path}` }]),
    );
    const ctx = await unpackBuildContext(tgz, dest);
    expect(await readdir(dest)).toEqual(["kitt-build-context"]);
    expect(await readFile(join(ctx.contextDir, ctx.dockerfile), "utf8")).toBe("FROM scratch\n");
  });

  it("drops setuid, setgid and sticky bits", async () => {
    const { tgz, dest } = await archive(tarball([DOCKERFILE, { path: "kitt-build-context/suid", body: "x", mode: 0o4755 }, { path: "kitt-build-context/d", type: "Directory", mode: 0o3777 }]));
    const ctx = await unpackBuildContext(tgz, dest);
    expect((await lstat(join(ctx.contextDir, "suid"))).mode & 0o7777).toBe(0o755);
    expect((await lstat(join(ctx.contextDir, "d"))).mode & 0o7000).toBe(0);
  });

  it.each<[string, Entry[], RegExp]>([
    ["an absolute path", [DOCKERFILE, { path: "/etc/cron.d/evil", body: "x" }], /refusing entry "\/etc\/cron.d\/evil": absolute path/],
    ["a .. segment inside the root", [DOCKERFILE, { path: "kitt-build-context/../evil", body: "x" }], /refusing entry "kitt-build-context\/..\/evil": ".." in its path/],
    ["a .. segment at the start", [DOCKERFILE, { path: "../evil", body: "x" }], /refusing entry "..\/evil": ".." in its path/],
    ["an entry outside the root", [DOCKERFILE, { path: "other/file", body: "x" }], /refusing entry "other\/file": outside the kitt-build-context\/ root/],
    ["a file next to the root", [{ path: "Dockerfile", body: "FROM scratch\n" }, DOCKERFILE], /refusing entry "Dockerfile": outside/],
    ["a hard link", [DOCKERFILE, { path: "kitt-build-context/h", type: "Link", linkpath: "kitt-build-context/docker/web/Dockerfile" }], /refusing entry "kitt-build-context\/h": a hard link/],
    ["a character device", [DOCKERFILE, { path: "kitt-build-context/null", type: "CharacterDevice" }], /"kitt-build-context\/null": a device/],
    ["a block device", [DOCKERFILE, { path: "kitt-build-context/sda", type: "BlockDevice" }], /"kitt-build-context\/sda": a device/],
    ["a FIFO", [DOCKERFILE, { path: "kitt-build-context/fifo", type: "FIFO" }], /"kitt-build-context\/fifo": a FIFO/],
    ["a symlink to an absolute path", [DOCKERFILE, { path: "kitt-build-context/etc", type: "SymbolicLink", linkpath: "/etc" }], /"kitt-build-context\/etc": symlink to the absolute path "\/etc"/],
    ["a symlink out of the root", [DOCKERFILE, { path: "kitt-build-context/up", type: "SymbolicLink", linkpath: "../../etc" }], /"kitt-build-context\/up": symlink to "..\/..\/etc" leaves the context/],
    ["a symlink to the folder above the root", [DOCKERFILE, { path: "kitt-build-context/up", type: "SymbolicLink", linkpath: ".." }], /leaves the context/],
    [
      "a symlink that escapes through another symlink",
      [DOCKERFILE, { path: "kitt-build-context/a", type: "SymbolicLink", linkpath: "." }, { path: "kitt-build-context/b", type: "SymbolicLink", linkpath: "a/../x" }],
      /"kitt-build-context\/b": symlink to "a\/..\/x" leaves the context/,
    ],
    [
      "symlinks that loop",
      [DOCKERFILE, { path: "kitt-build-context/a", type: "SymbolicLink", linkpath: "b" }, { path: "kitt-build-context/b", type: "SymbolicLink", linkpath: "a" }],
      /leaves the context/,
    ],
    [
      "an entry written through a symlink",
      [DOCKERFILE, { path: "kitt-build-context/link", type: "SymbolicLink", linkpath: "docker" }, { path: "kitt-build-context/link/evil", body: "x" }],
      /"kitt-build-context\/link\/evil": below the symlink "kitt-build-context\/link"/,
    ],
    [
      "a symlink replacing a directory that holds entries",
      [DOCKERFILE, { path: "kitt-build-context/docker", type: "SymbolicLink", linkpath: "." }],
      /"kitt-build-context\/docker": a symlink where earlier entries have a directory/,
    ],
    ["the same file twice", [DOCKERFILE, DOCKERFILE], /"kitt-build-context\/docker\/web\/Dockerfile": it appears twice/],
    ["no Dockerfile", [{ path: "kitt-build-context/README", body: "x" }], /no docker\/web\/Dockerfile \(a regular file\) under kitt-build-context\//],
    [
      "a Dockerfile that is a symlink",
      [{ path: "kitt-build-context/Dockerfile", body: "FROM scratch\n" }, { path: DOCKERFILE.path, type: "SymbolicLink", linkpath: "../../Dockerfile" }],
      /no docker\/web\/Dockerfile \(a regular file\)/,
    ],
    ["the root as a file", [{ path: "kitt-build-context", body: "x" }], /"kitt-build-context": kitt-build-context must be a directory/],
    ["a name with a newline", [DOCKERFILE, { path: "/evil\nname", body: "x" }], /refusing entry "\/evil\\nname": absolute path/],
  ])("refuses %s", async (_what, entries, message) => {
    expect(await refused(entries)).toMatch(message);
  });

  it("bounds the unpacked size and the number of entries", async () => {
    const big = [DOCKERFILE, { path: "kitt-build-context/big", body: "x".repeat(2000) }];
    expect(await refused(big, { maxBytes: 1000 })).toBe('build context: more than 1000 bytes unpacked (at "kitt-build-context/big")');
    const many = [DOCKERFILE, ...Array.from({ length: 20 }, (_, i) => ({ path: `kitt-build-context/f${i}`, body: "x" }))];
    expect(await refused(many, { maxEntries: 10 })).toBe("build context: more than 10 entries");
  });

  it("refuses what is not a tarball, and a truncated one", async () => {
    expect(await refused(Buffer.from("this is not a tarball at all, not even gzip"))).toMatch(/^build context: not a readable .tar.gz: /);
    const good = tarball([DOCKERFILE, { path: "kitt-build-context/big", body: "y".repeat(100_000) }]);
    const { gunzipSync } = await import("node:zlib");
    const truncated = gzipSync(gunzipSync(good).subarray(0, 20_000));
    expect(await refused(truncated)).toMatch(/^build context: not a readable .tar.gz: .*Truncated input/);
    expect(await refused(good.subarray(0, good.length - 100))).toMatch(/^build context: /);
  });

  it("refuses to unpack over an existing context", async () => {
    const { tgz, dest } = await archive(tarball([DOCKERFILE]));
    await unpackBuildContext(tgz, dest);
    await expect(unpackBuildContext(tgz, dest)).rejects.toThrow(/kitt-build-context already exists/);
  });
});

describe("packContext", () => {
  it("streams the context as a tar with symlinks kept as links", async () => {
    const { tgz, dest } = await archive(await makeKittBuildContext());
    const ctx = await unpackBuildContext(tgz, dest);
    const entries = new Map<string, { type: string; size: number; linkpath?: string }>();
    const parser = new Parser({ onReadEntry: (e) => void (entries.set(e.path, { type: e.type, size: e.size, ...(e.linkpath ? { linkpath: e.linkpath } : {}) }), e.resume()) });
    for await (const chunk of packContext(ctx.contextDir)) parser.write(chunk as Buffer);
    await new Promise<void>((resolve) => {
      parser.on("end", resolve);
      parser.end();
    });
    expect(entries.get("./docker/web/Dockerfile")).toEqual({ type: "File", size: KITT_BUILD_CONTEXT_DOCKERFILE.length });
    expect(entries.get("./bin/sh")).toEqual({ type: "SymbolicLink", size: 0, linkpath: "busybox" });
    expect(entries.get("./bin/busybox")?.type).toBe("File");
    expect([...entries.keys()].every((p) => p.startsWith("./"))).toBe(true);
  });
});
