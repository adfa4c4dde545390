import { describe, expect, it } from "vitest";

import { checkCommand } from "./command-validation.js";
import { parseExtraArgs, parseSize } from "./container-command.js";

const cmd = (type: string, payload: Record<string, unknown>) => ({ kind: "unknown" as const, command_id: "c-1", test_id: "t-1", type, payload });

describe("run_container payloads", () => {
  it("reads a full payload into a spec, docker-run style extra_args included", () => {
    const checked = checkCommand(
      cmd("run_container", {
        image: "vllm/vllm-openai:v0.6.3",
        port: 8000,
        container_port: "8000",
        volumes: { "/data/models": "/models" },
        env: { HF_HOME: "/models", N: 3 },
        extra_args: ["--ipc=host", "--shm-size", "16g", "--ulimit", "memlock=-1:-1", "-e", "A=b=c", "--rm", "--gpus", "all"],
        command_args: ["--model", "/models/x"],
        health_url: "http://127.0.0.1:8000/health",
      }),
    );
    expect(checked).toEqual({
      ok: true,
      spec: {
        kind: "run_container",
        commandId: "c-1",
        testId: "t-1",
        image: "vllm/vllm-openai:v0.6.3",
        name: "kitt-svc-c-1",
        port: 8000,
        containerPort: 8000,
        gpu: true,
        volumes: [{ host: "/data/models", container: "/models" }],
        env: { A: "b=c", HF_HOME: "/models", N: "3" },
        commandArgs: ["--model", "/models/x"],
        networkMode: undefined,
        shmSizeBytes: 16 * 1024 ** 3,
        ipcMode: "host",
        ulimits: [{ name: "memlock", soft: -1, hard: -1 }],
        healthUrl: "http://127.0.0.1:8000/health",
        healthTimeoutS: 300,
      },
    });
  });

  it.each([
    [["--privileged"], "privileged option refused: --privileged"],
    [["--pid=host"], "privileged option refused: --pid"],
    [["--cap-add", "ALL"], "privileged option refused: --cap-add"],
    [["--security-opt=apparmor=unconfined"], "privileged option refused: --security-opt"],
    [["--device", "/dev/nvidia0"], "privileged option refused: --device"],
    [["-v", "/:/host"], "option refused: -v"],
    [["--user", "0"], "option refused: --user"],
    [["--gpus", "device=0"], "only --gpus all is supported"],
    [["--shm-size", "lots"], "--shm-size must be a size"],
    [["--network", "container:abc"], "--network must name a network"],
    [["--frobnicate"], 'unsupported option "--frobnicate"'],
    [["--shm-size"], "--shm-size needs a value"],
  ])("refuses extra_args %j naming the option", (extra, message) => {
    const checked = checkCommand(cmd("run_container", { image: "kitt:latest", extra_args: extra }));
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(checked.error).toContain(message);
  });

  it.each([
    [{ image: "bad image" }, "payload.image must be a Docker image reference"],
    [{ image: "-rm" }, "payload.image must be a Docker image reference"],
    [{ image: "x", port: 70000 }, "payload.port must be a port 1-65535"],
    [{ image: "x", volumes: { "/": "/host" } }, "a directory below /"],
    [{ image: "x", volumes: { "relative": "/x" } }, "an absolute path"],
    [{ image: "x", volumes: { "/a/../etc": "/x" } }, "without '..'"],
    [{ image: "x", env: { "BAD-KEY": "v" } }, "payload.env key must be a variable name"],
    [{ image: "x", command_args: "rm -rf /" }, "payload.command_args must be a list"],
    [{ image: "x", command_args: ["ok", "a\u0000b"] }, "payload.command_args[1]"],
    [{ image: "x", health_url: "file:///etc/passwd" }, "payload.health_url must be an http(s) URL"],
    [{ image: "x", health_timeout_s: 0 }, "payload.health_timeout_s"],
    [{ image: "x", name: "../evil" }, "payload.name must be a container name"],
    [{ image: "x", gpu: "yes" }, "payload.gpu must be true or false"],
  ])("refuses %j", (payload, message) => {
    const checked = checkCommand(cmd("run_container", payload));
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(checked.error).toContain(message);
  });

  it("stop_container needs the run_container command id; check_docker takes nothing", () => {
    expect(checkCommand(cmd("stop_container", { command_id: "svc-1" }))).toEqual({ ok: true, spec: { kind: "stop_container", commandId: "c-1", testId: "t-1", target: "svc-1" } });
    const bad = checkCommand(cmd("stop_container", { command_id: "../x" }));
    expect(bad.ok).toBe(false);
    expect(checkCommand(cmd("check_docker", {}))).toEqual({ ok: true, spec: { kind: "check_docker", commandId: "c-1", testId: "t-1" } });
  });

  it("parses sizes and leaves absent extra_args empty", () => {
    expect(parseSize("512m")).toBe(512 * 1024 ** 2);
    expect(parseSize("1.5g")).toBe(1.5 * 1024 ** 3);
    expect(parseSize("100")).toBe(100);
    expect(parseSize("-1g")).toBeUndefined();
    expect(parseExtraArgs(undefined)).toEqual({ gpu: undefined, networkMode: undefined, shmSizeBytes: undefined, ipcMode: undefined, ulimits: [], env: {} });
  });
});
