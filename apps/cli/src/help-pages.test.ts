import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";

import { COMMANDS } from "./commands.js";
import { runCli } from "./test-cli.js";

const HELP = new URL("../dist/help.json", import.meta.url);

describe("help pages printed without oclif (rendered by oclif at build time)", () => {
  it("has a page for every command and topic, and each prints exactly what oclif prints at 80 columns", async () => {
    const { pages } = JSON.parse(readFileSync(HELP, "utf8")) as { pages: Record<string, string> };
    const ids = Object.keys(COMMANDS).map((id) => id.split(":").join(" "));
    for (const id of ids) expect(Object.keys(pages)).toContain(id);
    const env = { ...process.env, HOME: tmpdir(), OCLIF_COLUMNS: "80" };
    const keys = Object.keys(pages);
    // A few at a time: each is two node processes.
    for (let i = 0; i < keys.length; i += 4) {
      await Promise.all(
        keys.slice(i, i + 4).map(async (key) => {
          const argv = [...(key === "" ? [] : key.split(" ")), "--help"];
          const [fast, oclif] = await Promise.all([runCli(argv, env), runCli(argv, { ...env, KITT_AGENT_NO_FAST_PATH: "1" })]);
          expect({ key, code: fast.code, stdout: fast.stdout }).toEqual({ key, code: 0, stdout: oclif.stdout });
          expect(oclif.code).toBe(0);
        }),
      );
    }
    expect(pages[""]).toContain("{{platform}}");
  }, 120_000);

  it("leaves what it has no page for to oclif (a typo gets oclif's answer, not silence)", async () => {
    const r = await runCli(["statsu", "--help"], { ...process.env, HOME: tmpdir() });
    expect(r.stdout + r.stderr).toMatch(/statsu/);
  });
});
