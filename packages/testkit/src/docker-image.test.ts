import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  dockerAvailable,
  dockerOk,
  dockerSuite,
  removeTestContainers,
  runDocker,
  TEST_CONTAINER_LABELS,
} from "./docker-engine.js";
import { buildKittTestImage, hostDockerArch, writeFakeKittBehaviour } from "./docker-image.js";
import { useTempDir } from "./temp-dir.js";

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

const noEngine = { ...process.env, DOCKER_HOST: "unix:///nonexistent/kitt-test-docker.sock" };

describe("dockerAvailable / dockerSuite without an engine", () => {
  it("reports why no engine answers", async () => {
    const engine = await dockerAvailable(noEngine);
    expect(engine.available).toBe(false);
    expect(engine.reason).toBeTruthy();
  });

  it("prints one skip line and returns false outside CI", async () => {
    const lines: string[] = [];
    const run = await dockerSuite({ env: { ...noEngine, CI: "" }, warn: (line) => lines.push(line) });
    expect(run).toBe(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^docker: no Docker engine answers \(.+\): skipping the Docker suite$/);
  });

  it("throws under CI=true", async () => {
    await expect(dockerSuite({ env: { ...noEngine, CI: "true" }, warn: () => {} })).rejects.toThrow(/CI=true/);
  });

  it("removeTestContainers refuses an empty label filter", async () => {
    await expect(removeTestContainers({})).rejects.toThrow(/without a label/);
  });
});

describe("buildKittTestImage without a static busybox", () => {
  it("names the package to install", async () => {
    // Node itself is dynamically linked.
    await expect(buildKittTestImage({ tag: "kitt-test-never:x", busybox: process.execPath, env: noEngine })).rejects.toThrow(
      /static busybox.*apt-get install busybox-static/,
    );
  });
});

describe.skipIf(!(await dockerSuite()))("the KITT test image (Docker)", { timeout: 30_000 }, () => {
  // Unique to this file and process, so the sweep never touches other files' containers.
  const labels = { ...TEST_CONTAINER_LABELS, "kitt.test.owner": `testkit-docker-image-${process.pid}` };
  const labelArgs = Object.entries(labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]);
  const user = process.getuid !== undefined ? ["--user", `${process.getuid()}:${process.getgid?.() ?? 0}`] : [];
  const tempDir = useTempDir(afterEach, "kitt-image-test-");
  const scratchTags: string[] = [];
  let image = "";

  beforeAll(async () => {
    image = await buildKittTestImage();
  }, 60_000);

  afterAll(async () => {
    await removeTestContainers(labels);
    if (scratchTags.length > 0) await runDocker(["rmi", ...scratchTags]);
  }, 60_000);

  const inspect = async (ref: string): Promise<{ Id: string; Architecture: string; Config: { Entrypoint: string[] } }> =>
    JSON.parse(await dockerOk(["image", "inspect", ref]))[0];

  /** `docker run` of the image's kitt with the model dir read-only and the output dir writable. */
  async function kittRun(extra: string[] = []): Promise<{ model: string; out: string; args: string[] }> {
    const model = await tempDir();
    const out = await tempDir();
    const args = ["run", "--network", "none", ...labelArgs, ...user, "-v", `${model}:${model}:ro`, "-v", `${out}:${out}`, ...extra, image];
    return { model, out, args: [...args, "run", "-m", model, "-e", "vllm", "-s", "quick", "-o", out] };
  }

  async function waitForLog(id: string, text: string): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const { stdout } = await runDocker(["logs", id]);
      if (stdout.includes(text)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`container ${id} never printed ${text}`);
  }

  it("is built for this machine with the kitt entrypoint, and reused by the next call", async () => {
    const first = await inspect(image);
    expect(first.Architecture).toBe(hostDockerArch());
    expect(first.Config.Entrypoint).toEqual(["/usr/local/bin/kitt"]);
    expect(image).toMatch(/^kitt-test:[a-z0-9]+-[0-9a-f]{12}$/);
    expect(await buildKittTestImage()).toBe(image);
    expect((await inspect(image)).Id).toBe(first.Id);
  });

  it("declares arm64 when asked, and concurrent builds of one tag agree", async () => {
    const tag = `kitt-test-scratch:arm64-${process.pid}`;
    scratchTags.push(tag);
    const refs = await Promise.all([1, 2, 3].map(() => buildKittTestImage({ arch: "arm64", tag })));
    expect(refs).toEqual([tag, tag, tag]);
    expect((await inspect(tag)).Architecture).toBe("arm64");
    // Same rootfs and config as the default arm64 image: same id.
    expect((await inspect(await buildKittTestImage({ arch: "arm64" }))).Id).toBe((await inspect(tag)).Id);
  });

  it("runs kitt with the defaults: numbered lines, metrics.json, exit 0", async () => {
    const { model, out, args } = await kittRun(["--rm"]);
    const result = await runDocker(args);
    expect(result.stderr).toBe("");
    expect(result.stdout.split("\n")).toEqual([
      `kitt (fake, container) run: model=${model} engine=vllm suite=quick mode=`,
      ...[1, 2, 3, 4, 5].map((i) => `[${i}/5] benchmark step ${i}`),
      "done (exit 0)",
      "",
    ]);
    expect(result.code).toBe(0);
    expect(JSON.parse(await readFile(join(out, "metrics.json"), "utf8"))).toEqual({ throughput_tokens_per_s: 1234.5, ttft_ms_p50: 42 });
  });

  it("follows fake-kitt.env: lines, stderr, metrics quoted as written, --mode and --auto-pull", async () => {
    const { model, out, args } = await kittRun(["--rm"]);
    const metrics = { note: `it's "quoted" $HOME \`x\` \\ done`, n: 1 };
    await writeFakeKittBehaviour(model, { lines: 2, stderrLine: true, metrics });
    const result = await runDocker([...args, "--mode", "docker", "--auto-pull"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("mode=docker\n[1/2] benchmark step 1\n[2/2] benchmark step 2\ndone (exit 0)\n");
    expect(result.stderr).toBe("a warning on stderr\n");
    expect(JSON.parse(await readFile(join(out, "metrics.json"), "utf8"))).toEqual(metrics);
  });

  it("exits with EXIT and writes no metrics then; prints 100,000 lines in order", async () => {
    const failing = await kittRun(["--rm"]);
    await writeFakeKittBehaviour(failing.model, { lines: 0, exitCode: 3 });
    const failed = await runDocker(failing.args);
    expect(failed.code).toBe(3);
    expect(failed.stdout.trim().split("\n").at(-1)).toBe("done (exit 3)");
    expect(await exists(join(failing.out, "metrics.json"))).toBe(false);

    const flood = await kittRun(["--rm"]);
    await writeFakeKittBehaviour(flood.model, { lines: 100_000, metrics: null });
    const flooded = await runDocker(flood.args);
    expect(flooded.code).toBe(0);
    const lines = flooded.stdout.trim().split("\n");
    expect(lines).toHaveLength(100_002);
    expect(lines.slice(1, -1).every((line, i) => line === `[${i + 1}/100000] benchmark step ${i + 1}`)).toBe(true);
    expect(await exists(join(flood.out, "metrics.json"))).toBe(false);
  });

  it("ends on docker stop's TERM (exit 143), grandchild and all", async () => {
    const { model, args } = await kittRun(["-d"]);
    await writeFakeKittBehaviour(model, { lines: 1, sleepSeconds: 60, grandchild: true });
    const id = (await dockerOk(args)).trim();
    await waitForLog(id, "[1/1]");
    await dockerOk(["stop", "-t", "20", id]);
    const logs = await dockerOk(["logs", id]);
    expect(logs).toMatch(/^grandchild \d+$/m);
    expect(logs).toContain("terminated (exit 143)");
    expect((await dockerOk(["inspect", "-f", "{{.State.ExitCode}}", id])).trim()).toBe("143");
    await dockerOk(["rm", "-f", id]);
  });

  it("with ignoreSigterm survives the TERM and dies by KILL (exit 137)", async () => {
    const { model, args } = await kittRun(["-d"]);
    await writeFakeKittBehaviour(model, { lines: 1, sleepSeconds: 60, ignoreSigterm: true });
    const id = (await dockerOk(args)).trim();
    await waitForLog(id, "[1/1]");
    await dockerOk(["stop", "-t", "1", id]);
    expect((await dockerOk(["inspect", "-f", "{{.State.ExitCode}}", id])).trim()).toBe("137");
    expect(await dockerOk(["logs", id])).not.toContain("terminated");
    await dockerOk(["rm", "-f", id]);
  });

  it("exits 2 on bad usage", async () => {
    const base = ["run", "--rm", "--network", "none", ...labelArgs, image];
    for (const argv of [[], ["run", "-m", "/m", "-e", "vllm", "-s", "quick"], ["run", "--bogus"]]) {
      const result = await runDocker([...base, ...argv]);
      expect(result.code, argv.join(" ")).toBe(2);
      expect(result.stderr).toMatch(/^usage: kitt run /);
    }
  });
});
