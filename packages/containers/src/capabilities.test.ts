import { afterAll, describe, expect, it } from "vitest";

import { capabilitiesFromImages, detectCapabilities, ENGINE_IMAGE_PREFIXES, normalizeImageTag } from "./capabilities.js";
import { DockerRuntime } from "./docker-runtime.js";
import { type ContainerRuntime, ContainerRuntimeError, type ImageInfo } from "./runtime.js";
import { importTinyImage, randomSuffix, realEngineAvailable, removeTags, tagImage } from "./test-engine.js";

describe("capabilitiesFromImages", () => {
  it("names each engine whose image prefix starts a tag, sorted and unique", () => {
    expect(
      capabilitiesFromImages([
        "vllm/vllm-openai:v0.6.3",
        "ollama/ollama:latest",
        "nvcr.io/nvidia/vllm:24.10-py3",
        "ghcr.io/ggml-org/llama.cpp:server-cuda",
        "ollama/ollama:0.3.14",
      ]),
    ).toEqual(["llama_cpp", "ollama", "vllm"]);
  });

  it("knows every prefix of the protocol, one engine each", () => {
    for (const [engine, prefixes] of Object.entries(ENGINE_IMAGE_PREFIXES)) {
      for (const prefix of prefixes) expect(capabilitiesFromImages([`${prefix}:latest`])).toEqual([engine]);
    }
    expect(capabilitiesFromImages(["ghcr.io/ggerganov/llama.cpp:full"])).toEqual(["llama_cpp"]);
    expect(capabilitiesFromImages(["kitt/llama-cpp:cuda12"])).toEqual(["llama_cpp"]);
  });

  it("is a plain prefix test on repo:tag, as in the original agent", () => {
    // The original uses str.startswith: a longer repository name with the same start counts.
    expect(capabilitiesFromImages(["vllm/vllm-openai-rocm:latest"])).toEqual(["vllm"]);
    expect(capabilitiesFromImages(["vllm/vllm-openai@sha256:0123"])).toEqual(["vllm"]);
    // Not at the start, other owners, other registries: no.
    expect(
      capabilitiesFromImages([
        "myregistry:5000/vllm/vllm-openai:latest",
        "ghcr.io/someone/ollama:1",
        "ollama:latest",
        "quay.io/ollama/ollama:latest",
        "kitt:latest",
        "nvidia/cuda:12.4.1-base-ubuntu22.04",
        "VLLM/VLLM-OPENAI:latest",
      ]),
    ).toEqual([]);
  });

  it("tolerates Docker Hub's spelled-out registry prefixes", () => {
    expect(capabilitiesFromImages(["docker.io/ollama/ollama:latest"])).toEqual(["ollama"]);
    expect(capabilitiesFromImages(["docker.io/library/ollama/ollama:latest"])).toEqual(["ollama"]);
    expect(capabilitiesFromImages(["index.docker.io/vllm/vllm-openai:v0.6.3"])).toEqual(["vllm"]);
    expect(normalizeImageTag("  docker.io/library/ubuntu:24.04 ")).toBe("ubuntu:24.04");
    expect(normalizeImageTag("nvcr.io/nvidia/vllm:24.10")).toBe("nvcr.io/nvidia/vllm:24.10");
    // Only the registry part is Hub's: a repository that merely contains it is left alone.
    expect(normalizeImageTag("ghcr.io/docker.io/x:1")).toBe("ghcr.io/docker.io/x:1");
  });

  it("ignores empty, dangling and non-string entries", () => {
    expect(capabilitiesFromImages([])).toEqual([]);
    expect(capabilitiesFromImages(["", "   ", "<none>:<none>", 42, null, undefined, { tag: "ollama/ollama:1" }])).toEqual([]);
    expect(() => capabilitiesFromImages("ollama/ollama:1" as unknown as string[])).toThrow(TypeError);
  });
});

function fakeRuntime(listImages: () => Promise<ImageInfo[]>): ContainerRuntime {
  return { listImages } as unknown as ContainerRuntime;
}

describe("detectCapabilities", () => {
  it("derives the capabilities from every tag of every local image", async () => {
    const runtime = fakeRuntime(async () => [
      { id: "sha256:a", repoTags: ["kitt:latest", "ollama/ollama:0.3.14"], architecture: "", os: "" },
      { id: "sha256:b", repoTags: [], architecture: "", os: "" },
      { id: "sha256:c", repoTags: ["vllm/vllm-openai:v0.6.3"], architecture: "", os: "" },
    ]);
    expect(await detectCapabilities(runtime)).toEqual({ capabilities: ["ollama", "vllm"] });
  });

  it("does not throw when Docker is unavailable, and says why", async () => {
    const runtime = new DockerRuntime({ env: { DOCKER_HOST: "unix:///nonexistent/kitt/docker.sock" } });
    expect(await detectCapabilities(runtime)).toEqual({
      capabilities: [],
      error: "Docker is not available at unix:///nonexistent/kitt/docker.sock: no socket (is the Docker engine installed and running?)",
    });
  });

  it("does not throw when the engine answers with an error", async () => {
    const runtime = fakeRuntime(() => Promise.reject(new ContainerRuntimeError("list images", "server error", 500)));
    expect(await detectCapabilities(runtime)).toEqual({ capabilities: [], error: "list images: server error" });
  });
});

const engine = await realEngineAvailable("capabilities tests");

describe.runIf(engine)("detectCapabilities against the real engine", () => {
  const suffix = randomSuffix();
  const base = `kitt-capabilities-test-${suffix}:base`;
  const ollama = `ollama/ollama:test-${suffix}`;
  afterAll(() => removeTags(ollama, base));

  it("sees an image tagged ollama/ollama:* as the ollama capability", async () => {
    const runtime = new DockerRuntime();
    await importTinyImage(base);
    await tagImage(base, ollama);
    const found = await detectCapabilities(runtime);
    expect(found.error).toBeUndefined();
    expect(found.capabilities).toContain("ollama");

    // Other tests may hold engine images of their own; only this one's tag is ours to judge.
    await removeTags(ollama);
    const images = await runtime.listImages();
    expect(images.flatMap((i) => i.repoTags)).not.toContain(ollama);
  });
});
