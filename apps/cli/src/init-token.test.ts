import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { useTempDir } from "@kitt/testkit";

import { BIN, cliEnv, runCli, until } from "./test-cli.js";

const tempDir = useTempDir(afterEach);

const TOKEN = "tok-0123456789abcdef";

async function yamlToken(home: string): Promise<string | undefined> {
  return /^token: (.*)$/m.exec(await readFile(join(home, ".kitt", "agent.yaml"), "utf8"))?.[1];
}

describe("kitt-agent init takes the token without putting it on the command line", () => {
  it("--token - reads the first line of stdin, and the token never shows in the process's command line", async () => {
    const home = await tempDir();
    const child = spawn(process.execPath, [BIN, "init", "--server", "http://kitt:8080", "--token", "-"], {
      env: cliEnv(home),
      cwd: home,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const exit = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    // What `ps` shows while init waits for the token: its /proc command line.
    const cmdline = () => readFileSync(`/proc/${child.pid}/cmdline`, "utf8");
    await until(() => cmdline().includes("--token"), 20_000, "init to start");
    expect(cmdline().split("\0")).toContain("-");
    child.stdin.end(`  ${TOKEN}  \n`);
    expect(await exit).toBe(0);
    expect(stderr).toBe("");
    expect(stdout).not.toContain(TOKEN);
    expect(await yamlToken(home)).toBe(TOKEN);
  });

  it("--token-file reads a one-line file; KITT_AGENT_TOKEN is used without either flag; --token <value> still works", async () => {
    const home = await tempDir();
    await writeFile(join(home, "kitt-token"), `${TOKEN}\n`, { mode: 0o600 });
    const fromFile = await runCli(["init", "--server", "http://kitt:8080", "--token-file", "kitt-token"], cliEnv(home));
    expect(fromFile.stderr).toBe("");
    expect(fromFile.code).toBe(0);
    expect(await yamlToken(home)).toBe(TOKEN);

    const fromEnv = await runCli(["init", "--server", "http://kitt:8080", "--force"], cliEnv(home, { KITT_AGENT_TOKEN: "tok-from-env-123" }));
    expect(fromEnv.code).toBe(0);
    expect(await yamlToken(home)).toBe("tok-from-env-123");

    // A flag wins over the environment.
    const both = await runCli(["init", "--server", "http://kitt:8080", "--force", "--token-file", "kitt-token"], cliEnv(home, { KITT_AGENT_TOKEN: "tok-from-env-123" }));
    expect(both.code).toBe(0);
    expect(await yamlToken(home)).toBe(TOKEN);

    const plain = await runCli(["init", "--server", "http://kitt:8080", "--force", "--token", "tok-plain-4567"], cliEnv(home));
    expect(plain.code).toBe(0);
    expect(await yamlToken(home)).toBe("tok-plain-4567");
  });

  it("help says where else the token can come from and that a --token value shows in ps", async () => {
    const home = await tempDir();
    const help = await runCli(["init", "--help"], cliEnv(home));
    expect(help.code).toBe(0);
    const text = help.stdout.replace(/\s+/g, " ");
    expect(text).toContain("--token-file=<value> Read the token from this file");
    expect(text).toContain("Bearer token of this agent, or - to read it from stdin (a value here is visible in `ps`)");
    expect(text).toContain("without either flag it comes from KITT_AGENT_TOKEN");
  });

  it.each([
    ["an empty stdin", ["--token", "-"], "", /^Error: --token - \(stdin\): no token in it\n$/],
    ["a token with a control character", ["--token", "-"], "tok-\u0007bell\n", /^Error: --token - \(stdin\): the token holds a control character\n$/],
    ["a file that is not there", ["--token-file", "missing"], undefined, /^Error: --token-file missing: not a readable file \(ENOENT\)\n$/],
    ["a directory", ["--token-file", "."], undefined, /^Error: --token-file \.: not a regular file\n$/],
    ["a file of two lines", ["--token-file", "two-lines"], undefined, /^Error: --token-file two-lines: holds more than one line; put only the token in it\n$/],
    ["a file of 5000 bytes", ["--token-file", "big"], undefined, /^Error: --token-file big: larger than 4096 bytes, not a token\n$/],
    // Not oclif's exclusive-flag message: that one repeats the --token value.
    ["both flags", ["--token", "tok-secret-x", "--token-file", "two-lines"], undefined, /^Error: use either --token or --token-file, not both\n$/],
  ])("refuses %s with exit 2 and one line, writing nothing", async (_what, flags, input, message) => {
    const home = await tempDir();
    await writeFile(join(home, "two-lines"), "tok-a\ntok-b\n");
    await writeFile(join(home, "big"), "x".repeat(5000));
    const r = await runCli(["init", "--server", "http://kitt:8080", ...flags], cliEnv(home), input === undefined ? {} : { input });
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    await mkdir(join(home, ".kitt"), { recursive: true });
    await expect(readFile(join(home, ".kitt", "agent.yaml"))).rejects.toThrow(/ENOENT/);
  });
});
