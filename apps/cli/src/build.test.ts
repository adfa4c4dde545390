/**
 * `kitt-agent build` through the built CLI, against the fake KITT server and
 * the real Docker engine (skipped with one line when none answers; CI=true
 * makes that a failure). The build always tags kitt:latest, so the tag as it
 * was before this file ran is put back afterwards, and the engine tests hold
 * a host-wide lock meanwhile: a suite running beside this one moves the same
 * tag.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";

import { writeAgentConfig } from "@kitt/protocol";
import { acquireHostLock, dockerSuite, makeKittBuildContext, runDocker, startFakeKittServer, TEST_CONTAINER_LABELS, useTempDir, type FakeKittServer } from "@kitt/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { cliEnv, runCli } from "./test-cli.js";
import { closedPort } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const servers: FakeKittServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const RUN = randomBytes(4).toString("hex");
const TAG = `kitt-buildtest-${RUN}:1`;
const CONFIG_TAG = `kitt-buildtest-${RUN}-cfg:2`;
const NEVER_TAG = `kitt-buildtest-${RUN}-refused:1`;
const DOCKER_HOST = process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock";

let context: Buffer | undefined;

async function setup(options: { config?: boolean; kittImage?: string } = {}) {
  const home = await tempDir();
  const server = await startFakeKittServer({ agents: [{ name: "gpu-01", token: "tok-build-1" }] });
  servers.push(server);
  context ??= await makeKittBuildContext();
  server.setBuildContext(context);
  if (options.config !== false) {
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), {
      server_url: server.url,
      token: "tok-build-1",
      name: "gpu-01",
      port: await closedPort(),
      ...(options.kittImage !== undefined ? { kitt_image: options.kittImage } : {}),
    });
  }
  return { home, server, env: cliEnv(home, { DOCKER_HOST }) };
}

/** The image id a reference names on the engine, undefined when none. */
async function imageId(ref: string): Promise<string | undefined> {
  const r = await runDocker(["image", "inspect", "--format", "{{.Id}}", ref], { env: { ...process.env, DOCKER_HOST } });
  return r.code === 0 ? r.stdout.trim() : undefined;
}

describe("kitt-agent build (no engine needed)", () => {
  it("fails in one line, before any download, when Docker is not there", async () => {
    const w = await setup();
    const r = await runCli(["build"], { ...w.env, DOCKER_HOST: `unix://${join(w.home, "no-docker.sock")}` });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`Error: Docker is not available at unix://${join(w.home, "no-docker.sock")}: no socket (is the Docker engine installed and running?)\n`);
    expect(w.server.requests).toEqual([]);
  });

  it("refuses a bad tag and a missing agent.yaml as usage errors", async () => {
    const w = await setup();
    const bad = await runCli(["build", "--tag", "Not A Tag"], w.env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^Error: "Not A Tag" is not a Docker image tag .*\n$/);
    const none = await setup({ config: false });
    const missing = await runCli(["build"], none.env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^Error: .*agent\.yaml: not found .*\n$/);
    expect(w.server.requests).toEqual([]);
  });
});

describe.skipIf(!(await dockerSuite()))("kitt-agent build against the real Docker engine", () => {
  let latestBefore: string | undefined;
  const built = new Set<string>();
  let unlock: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    unlock = await acquireHostLock("docker-kitt-latest", { timeoutMs: 150_000 });
    latestBefore = await imageId("kitt:latest");
  }, 180_000);

  afterAll(async () => {
    const env = { ...process.env, DOCKER_HOST };
    try {
      for (const ref of [TAG, CONFIG_TAG, NEVER_TAG]) await runDocker(["rmi", ref], { env });
      const latestNow = await imageId("kitt:latest");
      if (latestBefore !== undefined) {
        if (latestNow !== latestBefore) await runDocker(["tag", latestBefore, "kitt:latest"], { env });
      } else if (latestNow !== undefined && built.has(latestNow)) {
        await runDocker(["rmi", "kitt:latest"], { env });
      }
      // Images of earlier builds that lost their tags to later ones (--no-cache), with their layers.
      for (const id of built) if (id !== latestBefore) await runDocker(["rmi", id], { env });
    } finally {
      await unlock?.();
    }
  });

  it("builds docker/web/Dockerfile of the context, tags --tag and kitt:latest, prints id, architecture and tags", async () => {
    const w = await setup();
    const r = await runCli(["build", "--tag", TAG, "--server", w.server.url], w.env, { timeoutMs: 120_000 });
    expect(r.stderr).toContain("Step 1/5 : FROM scratch");
    expect(r.code).toBe(0);
    const id = await imageId(TAG);
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    built.add(id as string);
    expect(await imageId("kitt:latest")).toBe(id);
    const arch = (await runDocker(["version", "--format", "{{.Server.Arch}}"], { env: { ...process.env, DOCKER_HOST } })).stdout.trim();
    expect(r.stdout).toBe(`Built ${TAG} (${(id as string).slice(0, 19)}), architecture ${arch}\nTagged ${TAG}\nTagged kitt:latest\n`);
    expect(r.stderr).toContain(`Build context verified: `);
    expect(r.stderr).toContain(`sha256 ${w.server.buildContextDigest()?.sha256}`);
    expect(w.server.requests.map((q) => `${q.method} ${q.path}`)).toEqual(["GET /api/v1/agent/build-context/sha256", "GET /api/v1/agent/build-context"]);

    // What was built is the context's image: its entry point is the context's kitt script, run by the context's busybox.
    const run = await runDocker(["run", "--rm", "--network", "none", "--label", `kitt.test=${TEST_CONTAINER_LABELS["kitt.test"]}`, TAG, "run", "-m", "x"], { env: { ...process.env, DOCKER_HOST } });
    expect(run.stderr).toBe("");
    expect(run.stdout).toBe("kitt (fake, from a kitt-agent build test) run -m x\n");
  });

  it("--json prints one document; kitt_image from agent.yaml names the image; --no-cache builds afresh", async () => {
    const w = await setup({ kittImage: CONFIG_TAG });
    const r = await runCli(["build", "--json", "--no-cache"], w.env, { timeoutMs: 120_000 });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(doc).sort()).toEqual(["architecture", "context_sha256", "image_id", "tags"]);
    expect(doc.tags).toEqual([CONFIG_TAG, "kitt:latest"]);
    expect(doc.image_id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(typeof doc.architecture).toBe("string");
    expect(doc.context_sha256).toBe(w.server.buildContextDigest()?.sha256);
    built.add(doc.image_id as string);
    expect(await imageId(CONFIG_TAG)).toBe(doc.image_id);
    expect(await imageId("kitt:latest")).toBe(doc.image_id);
    // Nothing from the engine's build output in stdout; it is on stderr.
    expect(r.stderr).toContain("Step 2/5 : COPY bin/busybox /bin/busybox");
  });

  it("refuses a tampered context: nothing is built or tagged", async () => {
    const w = await setup();
    w.server.setBuildContextDigest("0".repeat(64));
    const latest = await imageId("kitt:latest");
    const r = await runCli(["build", "--tag", NEVER_TAG], w.env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("Error: "));
    expect(errors).toEqual([`Error: build context digest mismatch: the download's sha256 ${w.server.buildContextDigest()?.sha256} is not the server's ${"0".repeat(64)}`]);
    expect(r.stderr).not.toContain("Step 1/");
    expect(await imageId(NEVER_TAG)).toBeUndefined();
    expect(await imageId("kitt:latest")).toBe(latest);
  });

  it("refuses to build without a published digest", async () => {
    const w = await setup();
    w.server.setBuildContextDigest(null);
    const r = await runCli(["build", "--tag", NEVER_TAG], w.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\nError: build context digest missing: GET \/api\/v1\/agent\/build-context\/sha256 answered 404; refusing an unverified build context\n$/);
    expect(w.server.requests.map((q) => q.path)).toEqual(["/api/v1/agent/build-context/sha256"]);
    expect(await imageId(NEVER_TAG)).toBeUndefined();
  });

  it("reports server errors in one line", async () => {
    const w = await setup();
    w.server.failNext(5, 500, { error: "build context unavailable" }, { path: "/api/v1/agent/build-context" });
    const r = await runCli(["build", "--tag", NEVER_TAG], w.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\nError: GET \/api\/v1\/agent\/build-context failed with HTTP 500\n$/);
    const gone = await setup();
    gone.server.setBuildContext(null);
    gone.server.setBuildContextDigest("1".repeat(64));
    const missing = await runCli(["build", "--tag", NEVER_TAG], gone.env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/\nError: GET \/api\/v1\/agent\/build-context failed with HTTP 404\n$/);
    expect(await imageId(NEVER_TAG)).toBeUndefined();
  });
});
