import { mkdtemp, readFile, rm, stat, writeFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { loadAgentConfig, resolveConfigPath, writeAgentConfig } from "./config.js";
import { ConfigError } from "./errors.js";

let dir: string;
const home = "/home/tester";
const base = { homedir: home, hostname: "gpu-node-01", env: {} as Record<string, string> };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "kitt-config-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(yamlText: string, env: Record<string, string> = {}) {
  const path = join(dir, "agent.yaml");
  await writeFile(path, yamlText);
  return loadAgentConfig({ ...base, env, path });
}

async function loadError(yamlText: string, env: Record<string, string> = {}): Promise<ConfigError> {
  try {
    await load(yamlText, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("loadAgentConfig", () => {
  it("fills defaults", async () => {
    const { config, warnings } = await load("server_url: https://kitt:8080/\ntoken: s3cret\n");
    expect(warnings).toEqual([]);
    expect(config).toEqual({
      server_url: "https://kitt:8080",
      token: "s3cret",
      name: "gpu-node-01",
      host: "0.0.0.0",
      port: 8090,
      model_storage_dir: "/home/tester/.kitt/models",
      model_share_source: "",
      model_share_mount: "",
      auto_cleanup: true,
      heartbeat_interval_s: 30,
      insecure: false,
      tls: {},
      benchmark_command: "kitt",
      execution: "auto",
      kitt_image: "",
      docker_gpus: "auto",
      cancel_grace_s: 10,
      max_queued_jobs: 16,
      copy_concurrency: 4,
      state_dir: "/home/tester/.kitt",
      log_level: "info",
    });
  });

  it("expands ~ and resolves relative paths against the file's directory", async () => {
    const { config } = await load(
      "server_url: http://k\nmodel_storage_dir: ~/models\ntls:\n  cert: certs/agent.pem\n  key: /etc/kitt/agent-key.pem\n  ca: ~/ca.pem\n",
    );
    expect(config.model_storage_dir).toBe("/home/tester/models");
    expect(config.tls).toEqual({ cert: join(dir, "certs/agent.pem"), key: "/etc/kitt/agent-key.pem", ca: "/home/tester/ca.pem" });
  });

  it("applies KITT_AGENT_* env overrides over the file", async () => {
    const { config } = await load("server_url: http://k\nport: 9000\nauto_cleanup: true\n", {
      KITT_AGENT_PORT: "9100",
      KITT_AGENT_AUTO_CLEANUP: "False",
      KITT_AGENT_TLS_CA: "/ca.pem",
      KITT_AGENT_SERVER_URL: "https://other:8443",
    });
    expect(config.port).toBe(9100);
    expect(config.auto_cleanup).toBe(false);
    expect(config.tls.ca).toBe("/ca.pem");
    expect(config.server_url).toBe("https://other:8443");
  });

  it.each([
    ["port: abc", 'port must be an integer 1-65535, got "abc"'],
    ["port: 70000", "port must be an integer 1-65535, got 70000"],
    ["port: 80.5", "port must be an integer 1-65535, got 80.5"],
    ["heartbeat_interval_s: 5", "heartbeat_interval_s must be an integer 10-300, got 5"],
    ["auto_cleanup: maybe", 'auto_cleanup must be true or false, got "maybe"'],
    ["log_level: loud", 'log_level must be one of debug, info, warn, error, got "loud"'],
    ["name: 'bad name/x'", `name must be 1-128 letters, digits, '.', '_' or '-', got "bad name/x"`],
    ["model_storage_dir: [a, b]", "model_storage_dir must be a path, got a list"],
    ["tls: 5", "tls must be a mapping with cert, key, ca, got 5"],
    ["host: 'kitt host'", 'host must be an IP address or host name (0.0.0.0 for all interfaces, 127.0.0.1 for this host only), got "kitt host"'],
    ["host: 10.0.0.300", 'host must be an IP address or host name (0.0.0.0 for all interfaces, 127.0.0.1 for this host only), got "10.0.0.300"'],
    ["execution: podman", 'execution must be one of auto, docker, host, got "podman"'],
    ["docker_gpus: some", 'docker_gpus must be one of auto, all, none, got "some"'],
    ["kitt_image: 'kitt latest'", 'kitt_image must be a Docker image reference like kitt:latest or registry/kitt:1.7, got "kitt latest"'],
    ["kitt_image: 'Kitt:Latest'", 'kitt_image must be a Docker image reference like kitt:latest or registry/kitt:1.7, got "Kitt:Latest"'],
  ])("%s -> one-line error naming file and field", async (line, message) => {
    const err = await loadError(`server_url: http://k\n${line}\n`);
    expect(err.message).toBe(`${join(dir, "agent.yaml")}: ${message}`);
    expect(err.message).not.toContain("\n");
  });

  it.each(["127.0.0.1", "::", "10.1.2.3", "gpu-01.lab.example", "localhost"])("host %s is accepted as it is", async (host) => {
    const { config } = await load(`server_url: http://k\nhost: "${host}"\n`);
    expect(config.host).toBe(host);
  });

  it("reads the Docker execution settings from the file and the environment", async () => {
    const { config } = await load(
      "server_url: http://k\nexecution: docker\nkitt_image: ' registry.local:5000/kitt/kitt:1.7.0 '\n",
      { KITT_AGENT_DOCKER_GPUS: "none" },
    );
    expect(config.execution).toBe("docker");
    expect(config.kitt_image).toBe("registry.local:5000/kitt/kitt:1.7.0");
    expect(config.docker_gpus).toBe("none");
  });

  it("names the env variable when the bad value came from it", async () => {
    const err = await loadError("server_url: http://k\n", { KITT_AGENT_PORT: "abc" });
    expect(err.message).toBe('KITT_AGENT_PORT: port must be an integer 1-65535, got "abc"');
    expect(err.field).toBe("port");
  });

  it("rejects bad server URLs, including embedded credentials", async () => {
    expect((await loadError("server_url: ftp://k\n")).message).toContain('server_url must be an http(s) URL, got "ftp://k"');
    expect((await loadError("server_url: https://u:p@k\n")).message).toContain("server_url must not contain credentials");
    expect((await loadError("token: x\n")).message).toContain("server_url is required");
  });

  it("requires tls.cert and tls.key together", async () => {
    expect((await loadError("server_url: https://k\ntls:\n  cert: /a.pem\n")).message).toContain("tls.cert and tls.key must be given together");
  });

  it("reports YAML syntax errors with line and column", async () => {
    const err = await loadError("server_url: http://k\nport: [1,\n");
    expect(err.message).toMatch(/agent\.yaml:\d+:\d+: invalid YAML: /);
    expect(err.message).not.toContain("\n");
  });

  it("reports a missing file with the next step", async () => {
    await expect(loadAgentConfig({ ...base, path: join(dir, "nope.yaml") })).rejects.toThrow(/nope\.yaml: not found \(run kitt-agent init/);
  });

  it("warns about unknown keys (typos) without failing", async () => {
    const { warnings } = await load("server_url: http://k\nprot: 1\ntls:\n  crt: x\n");
    expect(warnings).toEqual([
      `${join(dir, "agent.yaml")}: unknown setting "prot" ignored`,
      `${join(dir, "agent.yaml")}: unknown setting "tls.crt" ignored`,
    ]);
  });

  it("an empty file is valid when no server is required", async () => {
    const path = join(dir, "agent.yaml");
    await writeFile(path, "# nothing yet\n\n");
    const { config } = await loadAgentConfig({ ...base, path, requireServer: false });
    expect(config.port).toBe(8090);
  });
});

describe("resolveConfigPath", () => {
  it("explicit, then KITT_AGENT_CONFIG, then ~/.kitt/agent.yaml", () => {
    expect(resolveConfigPath("/x/a.yaml", { env: { KITT_AGENT_CONFIG: "/y" } })).toBe("/x/a.yaml");
    expect(resolveConfigPath(undefined, { env: { KITT_AGENT_CONFIG: "~/c.yaml" }, homedir: home })).toBe("/home/tester/c.yaml");
    expect(resolveConfigPath(undefined, { env: {}, homedir: home })).toBe("/home/tester/.kitt/agent.yaml");
  });
});

describe("writeAgentConfig", () => {
  it("writes mode 0600 atomically and round-trips", async () => {
    const path = join(dir, "sub", "agent.yaml");
    await writeAgentConfig(path, { server_url: "https://kitt:8080", token: "s3cret", name: "n1", port: 8091, tls: { ca: "/ca.pem" } });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(join(dir, "sub"))).toEqual(["agent.yaml"]);
    const { config } = await loadAgentConfig({ ...base, path });
    expect(config).toMatchObject({ server_url: "https://kitt:8080", token: "s3cret", name: "n1", port: 8091, tls: { ca: "/ca.pem" } });
  });

  it("replaces an existing file and keeps 0600", async () => {
    const path = join(dir, "agent.yaml");
    await writeFile(path, "old: true\n", { mode: 0o644 });
    await writeAgentConfig(path, { server_url: "http://k" });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readFile(path, "utf8")).toContain("server_url: http://k");
  });
});
