import { afterEach, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import https from "node:https";
import { fileURLToPath } from "node:url";
import { CliUsageError, main, parseCliArgs } from "./cli.js";
import { useTempDir } from "./temp-dir.js";

const BIN = fileURLToPath(new URL("../bin/kitt-fake-server.js", import.meta.url));
const DIST_CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const tempDir = useTempDir(afterEach);
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

interface Running {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exit: Promise<number | null>;
}

/** Spawns the real bin and waits for the URL line on stdout. */
async function startCli(args: string[]): Promise<Running> {
  if (!existsSync(DIST_CLI)) throw new Error(`${DIST_CLI} is missing: build @kitt/testkit before testing its CLI`);
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      const newline = stdout.indexOf("\n");
      if (newline >= 0) resolve(stdout.slice(0, newline));
    });
    void exit.then((code) => reject(new Error(`kitt-fake-server exited with ${code} before printing its URL: ${stderr}`)));
  });
  return { child, url, stderr: () => stderr, exit };
}

describe("parseCliArgs", () => {
  it("parses every flag", () => {
    expect(parseCliArgs(["--port", "0", "--host", "::1", "--tls-dir", "/tmp/x", "--agent", "a:t:with:colons", "--agent", "b:u", "--admin-token", "adm"])).toEqual({
      host: "::1",
      port: 0,
      tlsDir: "/tmp/x",
      agents: [
        { name: "a", token: "t:with:colons" },
        { name: "b", token: "u" },
      ],
      adminToken: "adm",
    });
    expect(parseCliArgs([])).toMatchObject({ host: "127.0.0.1", port: 18080, tlsDir: null, agents: [], adminToken: null });
    expect(parseCliArgs(["--help"])).toBe("help");
  });

  it.each([
    [["--port", "abc"], '--port must be an integer 0-65535, got "abc"'],
    [["--port", "70000"], "--port must be an integer 0-65535"],
    [["--agent", "noColon"], '--agent must be NAME:TOKEN, got "noColon"'],
    [["--agent", ":tok"], "--agent must be NAME:TOKEN"],
    [["--agent", "name:"], "--agent must be NAME:TOKEN"],
    [["--host", ""], "--host must not be empty"],
    [["--bogus"], "Unknown option '--bogus'"],
    [["extra"], "extra"],
  ])("rejects %j", (argv, message) => {
    expect(() => parseCliArgs(argv)).toThrow(CliUsageError);
    expect(() => parseCliArgs(argv)).toThrow(message);
  });

  it("main reports a usage error in one line with exit code 2", async () => {
    let err = "";
    const io = { stdout: { write: () => true }, stderr: { write: (t: string) => (err += t) }, signals: process };
    expect(await main(["--port", "x"], io)).toBe(2);
    expect(err).toBe('kitt-fake-server: --port must be an integer 0-65535, got "x" (see --help)\n');
  });
});

// Generous timeout: each test starts a Node process, slow on a loaded 2-core machine.
describe("kitt-fake-server (spawned)", { timeout: 20_000 }, () => {
  it("prints its URL, answers health, logs requests to stderr, and exits 0 on SIGTERM", async () => {
    const run = await startCli(["--port", "0", "--agent", "gpu-01:tok"]);
    expect(run.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${run.url}/api/v1/health`);
    expect(await health.json()).toEqual({ status: "ok" });
    // A person's flow: queue a test with curl-like calls, read its logs back.
    const created = await fetch(`${run.url}/api/v1/quicktest/`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ agent_name: "gpu-01", model_path: "/m", engine_name: "vllm", suite_name: "quick" }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect(await (await fetch(`${run.url}/api/v1/quicktest/${id}/logs`)).json()).toEqual({ lines: [] });
    run.child.kill("SIGTERM");
    expect(await run.exit).toBe(0);
    expect(run.stderr()).toMatch(/GET \/api\/v1\/health 200 \d+ms/);
    expect(run.stderr()).toMatch(/POST \/api\/v1\/quicktest\/ 201/);
  });

  it("with --tls-dir writes the PKI there and serves mTLS", async () => {
    const dir = await tempDir();
    const run = await startCli(["--port", "0", "--tls-dir", dir]);
    expect(run.url).toMatch(/^https:/);
    const [ca, cert, key] = await Promise.all(["ca.pem", "client.pem", "client-key.pem"].map((f) => readFile(`${dir}/${f}`, "utf8")));
    const status = await new Promise<number>((resolve, reject) => {
      https.get(`${run.url}/api/v1/health`, { ca, cert, key, agent: false }, (res) => resolve(res.resume().statusCode ?? 0)).on("error", reject);
    });
    expect(status).toBe(200);
    run.child.kill("SIGINT");
    expect(await run.exit).toBe(0);
  });

  it("exits 1 with one line when the port is taken", async () => {
    const first = await startCli(["--port", "0"]);
    const port = new URL(first.url).port;
    const child = spawn(process.execPath, [BIN, "--port", port], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(1);
    expect(stderr).toBe(`kitt-fake-server: cannot listen on 127.0.0.1:${port}: address already in use\n`);
  });
});
