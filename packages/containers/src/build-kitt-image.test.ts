import { readdir } from "node:fs/promises";
import type { Readable } from "node:stream";

import { IntegrityError, KittServerClient, UsageError } from "@kitt/protocol";
import { type FakeKittServer, makeKittBuildContext, startFakeKittServer, useTempDir } from "@kitt/testkit";
import { Parser } from "tar";
import { afterEach, describe, expect, it } from "vitest";

import { buildKittImage, buildTags, normaliseImageTag } from "./build-kitt-image.js";
import { type BuildOptions, type ContainerRuntime, ContainerRuntimeUnavailableError } from "./runtime.js";

const tempDir = useTempDir(afterEach);
const servers: FakeKittServer[] = [];
const clients: KittServerClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function entriesOf(stream: Readable): Promise<string[]> {
  const names: string[] = [];
  const parser = new Parser({ onReadEntry: (e) => void (names.push(e.path), e.resume()) });
  for await (const chunk of stream) parser.write(chunk as Buffer);
  await new Promise<void>((resolve) => {
    parser.on("end", resolve);
    parser.end();
  });
  return names;
}

/** Just enough of a runtime: records the build, answers inspect with amd64. */
function fakeRuntime(options: { unavailable?: boolean } = {}) {
  const builds: { entries: string[]; options: BuildOptions }[] = [];
  const runtime = {
    info: async () => {
      if (options.unavailable) throw new ContainerRuntimeUnavailableError("unix:///nowhere.sock", "no socket (is the Docker engine installed and running?)");
      return { serverVersion: "20.10", apiVersion: "1.41", architecture: "amd64", os: "linux", runtimes: ["runc"], defaultRuntime: "runc" };
    },
    buildImage: async (context: Readable, opts: BuildOptions) => {
      builds.push({ entries: await entriesOf(context), options: opts });
      opts.onProgress?.("Step 1/5 : FROM scratch");
      return "sha256:0123456789abcdef";
    },
    inspectImage: async (ref: string) => ({ id: ref, repoTags: [], architecture: "amd64", os: "linux" }),
  } as unknown as ContainerRuntime;
  return { runtime, builds };
}

async function setup(unavailable = false) {
  const server = await startFakeKittServer();
  servers.push(server);
  const client = new KittServerClient({ serverUrl: server.url, retries: 0 });
  clients.push(client);
  server.setBuildContext(await makeKittBuildContext());
  return { server, client, workDir: await tempDir(), ...fakeRuntime({ unavailable }) };
}

describe("buildKittImage", () => {
  it("downloads, verifies, unpacks and builds docker/web/Dockerfile of the context root, then cleans up", async () => {
    const w = await setup();
    const lines: string[] = [];
    const built = await buildKittImage({ client: w.client, runtime: w.runtime, workDir: w.workDir, tag: "kitt-x:1", onProgress: (l) => lines.push(l) });
    expect(built).toEqual({ imageId: "sha256:0123456789abcdef", tags: ["kitt-x:1", "kitt:latest"], architecture: "amd64", contextSha256: w.server.buildContextDigest()?.sha256 });
    expect(w.builds).toHaveLength(1);
    const [build] = w.builds;
    expect(build?.options).toMatchObject({ tags: ["kitt-x:1", "kitt:latest"], dockerfile: "docker/web/Dockerfile" });
    expect(build?.options.noCache).toBeUndefined();
    // The context root is kitt-build-context/ itself: its folders at the top of the tar.
    expect(build?.entries).toEqual(expect.arrayContaining(["./docker/web/Dockerfile", "./bin/busybox", "./bin/kitt", "./bin/sh"]));
    expect(build?.entries.some((p) => p.includes("kitt-build-context"))).toBe(false);
    expect(lines[0]).toBe(`Downloading the build context from ${w.server.url}`);
    expect(lines).toContain("Step 1/5 : FROM scratch");
    expect(await readdir(w.workDir)).toEqual([]);
  });

  it("passes --no-cache on", async () => {
    const w = await setup();
    await buildKittImage({ client: w.client, runtime: w.runtime, workDir: w.workDir, noCache: true });
    expect(w.builds[0]?.options.noCache).toBe(true);
  });

  it("refuses a tampered context before building, and cleans up", async () => {
    const w = await setup();
    w.server.setBuildContextDigest("f".repeat(64));
    const error = await buildKittImage({ client: w.client, runtime: w.runtime, workDir: w.workDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toMatch(/^build context digest mismatch: /);
    expect(w.builds).toEqual([]);
    expect(await readdir(w.workDir)).toEqual([]);
  });

  it("stops between steps once aborted, and cleans up", async () => {
    const w = await setup();
    const controller = new AbortController();
    const onProgress = (line: string): void => {
      if (line.startsWith("Build context verified")) controller.abort();
    };
    await expect(buildKittImage({ client: w.client, runtime: w.runtime, workDir: w.workDir, onProgress, signal: controller.signal })).rejects.toThrow(/^build aborted$/);
    expect(w.builds).toEqual([]);
    expect(await readdir(w.workDir)).toEqual([]);
  });

  it("asks the engine first: nothing is downloaded when Docker is not there", async () => {
    const w = await setup(true);
    await expect(buildKittImage({ client: w.client, runtime: w.runtime, workDir: w.workDir })).rejects.toThrow(/^Docker is not available at unix:\/\/\/nowhere.sock/);
    expect(w.server.requests).toEqual([]);
    expect(await readdir(w.workDir)).toEqual([]);
  });

  it("refuses a bad tag before anything else", async () => {
    const w = await setup();
    await expect(buildKittImage({ client: w.client, runtime: w.runtime, workDir: w.workDir, tag: "Kitt:Latest" })).rejects.toBeInstanceOf(UsageError);
    expect(w.server.requests).toEqual([]);
  });
});

describe("buildTags", () => {
  it("takes --tag, else kitt_image, else kitt:latest, always adds kitt:latest, never twice", () => {
    expect(buildTags()).toEqual(["kitt:latest"]);
    expect(buildTags(undefined, "")).toEqual(["kitt:latest"]);
    expect(buildTags(undefined, "registry.local:5000/kitt:1.7")).toEqual(["registry.local:5000/kitt:1.7", "kitt:latest"]);
    expect(buildTags("kitt-test:2", "registry.local:5000/kitt:1.7")).toEqual(["kitt-test:2", "kitt:latest"]);
    expect(buildTags("kitt")).toEqual(["kitt:latest"]);
    expect(buildTags("kitt:latest", "other:1")).toEqual(["kitt:latest"]);
  });

  it.each(["Kitt:1", "kitt:", "kitt@sha256:abcd", "-kitt", "kitt:1 2", "kitt:-x", "a//b", ""])("refuses %j", (tag) => {
    expect(() => normaliseImageTag(tag)).toThrow(UsageError);
  });
});
