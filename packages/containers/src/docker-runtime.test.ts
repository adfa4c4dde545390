/**
 * DockerRuntime's container lifecycle against the real engine: create,
 * attach before start, start, wait, follow the log afterwards, stop a
 * container that ignores SIGTERM, list by label, remove. Skipped with one
 * line without an engine (an error under CI=true).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { buildKittTestImage, dockerSuite, removeTestContainers, TEST_CONTAINER_LABELS } from "@kitt/testkit";

import { DockerRuntime } from "./docker-runtime.js";
import { ContainerRuntimeError, ContainerRuntimeUnavailableError, type OutputStream } from "./runtime.js";
import { randomSuffix } from "./test-engine.js";

const RUN = await dockerSuite();
const FILE_LABEL = { "kitt.test.file": `docker-runtime-${randomSuffix()}` };
const LABELS = { ...TEST_CONTAINER_LABELS, ...FILE_LABEL };

describe.skipIf(!RUN)("DockerRuntime containers (real Docker engine)", () => {
  const rt = new DockerRuntime();
  let image = "";
  beforeAll(async () => {
    image = await buildKittTestImage({ entrypoint: null });
  });
  afterAll(async () => {
    await removeTestContainers(FILE_LABEL);
  });

  function collector() {
    const chunks: { stream: OutputStream; text: string }[] = [];
    return {
      onData: (chunk: Buffer, stream: OutputStream) => chunks.push({ stream, text: chunk.toString("utf8") }),
      text: (stream: OutputStream) =>
        chunks
          .filter((c) => c.stream === stream)
          .map((c) => c.text)
          .join(""),
    };
  }

  it("attached before start: every byte of stdout and stderr, in order, apart; the log holds the same afterwards", async () => {
    const script = 'seq 1 20000; echo "to stderr" >&2; printf "no newline at the end"; exit 3';
    const id = await rt.createContainer({ name: `kitt-rt-${randomSuffix()}`, image, cmd: ["sh", "-c", script], labels: LABELS, networkMode: "none" });
    const live = collector();
    const { finished } = await rt.attachOutput(id, { onData: live.onData });
    await rt.startContainer(id);
    expect(await rt.waitContainer(id)).toEqual({ exitCode: 3 });
    await finished;
    const expected = `${Array.from({ length: 20_000 }, (_, i) => `${i + 1}\n`).join("")}no newline at the end`;
    expect(live.text("stdout")).toBe(expected);
    expect(live.text("stderr")).toBe("to stderr\n");

    const later = collector();
    await rt.followOutput(id, { onData: later.onData });
    expect(later.text("stdout")).toBe(expected);
    expect(later.text("stderr")).toBe("to stderr\n");

    expect((await rt.listContainers(FILE_LABEL)).map((c) => c.id)).toEqual([id]);
    await rt.removeContainer(id);
    expect(await rt.inspectContainer(id)).toBeUndefined();
    await rt.removeContainer(id); // already gone: fine
  });

  it("stop: a container ignoring SIGTERM is killed after the grace; the attach stream ends", async () => {
    const id = await rt.createContainer({ name: `kitt-rt-${randomSuffix()}`, image, cmd: ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"], labels: LABELS, networkMode: "none" });
    const out = collector();
    const { finished } = await rt.attachOutput(id, { onData: out.onData });
    await rt.startContainer(id);
    const t0 = Date.now();
    await rt.stopContainer(id, 1);
    expect(await rt.waitContainer(id)).toEqual({ exitCode: 137 });
    expect(Date.now() - t0).toBeLessThan(8_000);
    await finished;
    expect(out.text("stdout")).toBe("up\n");
    expect((await rt.inspectContainer(id))?.state).toBe("exited");
    await rt.removeContainer(id);
  });

  it("an abort ends the attach at once, before the container does", async () => {
    const id = await rt.createContainer({ name: `kitt-rt-${randomSuffix()}`, image, cmd: ["sleep", "60"], labels: LABELS, networkMode: "none" });
    const abort = new AbortController();
    const { finished } = await rt.attachOutput(id, { onData: () => {}, signal: abort.signal });
    await rt.startContainer(id);
    abort.abort();
    await finished;
    expect((await rt.inspectContainer(id))?.state).toBe("running");
    await rt.removeContainer(id, { force: true });
    expect(await rt.inspectContainer(id)).toBeUndefined();
  });

  it("a failed pull says the engine's own reason, on one line", async () => {
    const err = await rt.pullImage("registry.invalid/kitt/kitt:1").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContainerRuntimeError);
    const message = (err as Error).message;
    expect(message).toMatch(/^pull registry\.invalid\/kitt\/kitt:1: .*registry\.invalid/);
    expect(message).not.toMatch(/server error|HTTP code/);
    expect(message).not.toContain("\n");
  });

  it("a missing image or container is undefined, not an error", async () => {
    expect(await rt.inspectImage(`kitt-no-such-image:${randomSuffix()}`)).toBeUndefined();
    expect(await rt.inspectContainer(`kitt-no-such-container-${randomSuffix()}`)).toBeUndefined();
  });
});

describe("DockerRuntime without an engine", () => {
  it("says nothing answers, naming the socket", async () => {
    const rt = new DockerRuntime({ env: { DOCKER_HOST: "unix:///nonexistent/kitt-docker.sock" }, callTimeoutMs: 2000 });
    const err = await rt.info().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContainerRuntimeUnavailableError);
    expect((err as Error).message).toMatch(/kitt-docker\.sock/);
    expect((err as Error).message).not.toContain("\n");
  });
});
