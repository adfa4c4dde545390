import { describe, expect, it } from "vitest";

import { Demuxer } from "./demux.js";
import { dockerEndpoint } from "./docker-host.js";
import { chooseKittImage } from "./image-choice.js";
import type { ContainerRuntime, ImageInfo } from "./runtime.js";

function frame(type: number, text: string): Buffer {
  const body = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

describe("Demuxer", () => {
  it("splits frames cut at every byte boundary into stdout and stderr, in order", () => {
    const stream = Buffer.concat([frame(1, "out one\n"), frame(2, "err one\n"), frame(1, ""), frame(1, "out two\n")]);
    for (let cut = 1; cut < stream.length; cut++) {
      const got: [string, string][] = [];
      const d = new Demuxer((chunk, s) => got.push([s, chunk.toString()]));
      d.push(stream.subarray(0, cut));
      d.push(stream.subarray(cut));
      d.end();
      expect(got.map(([s, t]) => `${s}:${t}`).join("")).toBe("stdout:out one\nstderr:err one\nstdout:out two\n");
    }
  });

  it("passes a stream without frame headers (a TTY container) through as stdout", () => {
    const got: string[] = [];
    const d = new Demuxer((chunk, s) => got.push(`${s}:${chunk.toString()}`));
    d.push(Buffer.from("plain text output\n"));
    d.push(Buffer.from("more\n"));
    expect(got.join("")).toBe("stdout:plain text output\nstdout:more\n");
  });
});

describe("dockerEndpoint", () => {
  it("reads DOCKER_HOST: default socket, unix://, tcp:// with and without TLS; refuses the rest", () => {
    expect(dockerEndpoint({})).toMatchObject({ kind: "unix", socketPath: "/var/run/docker.sock" });
    expect(dockerEndpoint({ DOCKER_HOST: "unix:///run/user/1000/docker.sock" })).toMatchObject({ kind: "unix", socketPath: "/run/user/1000/docker.sock" });
    expect(dockerEndpoint({ DOCKER_HOST: "tcp://10.0.0.5:2375" })).toMatchObject({ kind: "tcp", host: "10.0.0.5", port: 2375, tls: false });
    expect(dockerEndpoint({ DOCKER_HOST: "tcp://docker", DOCKER_TLS_VERIFY: "1" })).toMatchObject({ kind: "tcp", host: "docker", port: 2376, tls: true });
    expect(() => dockerEndpoint({ DOCKER_HOST: "ssh://me@box" })).toThrow(/DOCKER_HOST must start with unix:\/\/ or tcp:\/\//);
    expect(() => dockerEndpoint({ DOCKER_HOST: "unix://relative.sock" })).toThrow(/absolute socket path/);
  });
});

describe("chooseKittImage", () => {
  const images: Record<string, ImageInfo> = {
    "team/kitt:1.7": { id: "sha256:a", repoTags: ["team/kitt:1.7"], architecture: "arm64", os: "linux" },
    "kitt:latest": { id: "sha256:b", repoTags: ["kitt:latest"], architecture: "amd64", os: "linux" },
  };
  const rt = { inspectImage: async (ref: string) => images[ref] } as unknown as ContainerRuntime;

  it("takes kitt_image when present and of this architecture, else kitt:latest, saying why", async () => {
    expect(await chooseKittImage(rt, { kittImage: "team/kitt:1.7", hostArch: "arm64" })).toMatchObject({ ref: "team/kitt:1.7", skipped: [] });
    expect(await chooseKittImage(rt, { kittImage: "team/kitt:1.7", hostArch: "amd64" })).toMatchObject({
      ref: "kitt:latest",
      skipped: ["image team/kitt:1.7 is built for arm64, this host is amd64"],
    });
    expect(await chooseKittImage(rt, { kittImage: "gone:1", hostArch: "arm64" })).toEqual({
      ref: undefined,
      image: undefined,
      skipped: ["image gone:1 is not present locally", "image kitt:latest is built for amd64, this host is arm64"],
    });
    expect(await chooseKittImage(rt, { hostArch: "amd64" })).toMatchObject({ ref: "kitt:latest", skipped: [] });
  });
});
