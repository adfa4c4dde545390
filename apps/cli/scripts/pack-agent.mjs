#!/usr/bin/env node
/* eslint-disable no-console -- a build script: printing its result is its job */
// Builds the agent package a KITT server hands out at /api/v1/agent/package:
// an npm-pack-style tarball (everything under "package/") of @kitt/cli with
// its production dependencies, workspace packages included, in node_modules
// (pnpm deploy), so that `kitt-agent update` only unpacks it and switches a
// link: no registry access on the GPU host.
//
// Usage (from the repo root, after building @kitt/cli and its dependencies):
//   ./dev exec node apps/cli/scripts/pack-agent.mjs [--out DIR]
// Prints the tarball's path, then {"filename","sha256"} as the server serves it.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const cliDir = fileURLToPath(new URL("..", import.meta.url));
const args = process.argv.slice(2);
const outIndex = args.indexOf("--out");
const outDir = resolve(outIndex === -1 ? join(cliDir, "pack") : (args[outIndex + 1] ?? ""));

function run(command, argv, options = {}) {
  const r = spawnSync(command, argv, { stdio: ["ignore", "inherit", "inherit"], timeout: 600_000, ...options });
  if (r.error) throw new Error(`${command}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${command} ${argv.join(" ")} exited with ${r.status}`);
}

if (!existsSync(join(cliDir, "dist", "main.js"))) {
  console.error("apps/cli/dist is missing: run ./dev turbo run build --filter=@kitt/cli first");
  process.exit(1);
}
const { version } = JSON.parse(await readFile(join(cliDir, "package.json"), "utf8"));
const work = await mkdtemp(join(tmpdir(), "kitt-agent-pack-"));
try {
  const staged = join(work, "package");
  run("pnpm", ["--filter", "@kitt/cli", "deploy", "--prod", staged], { cwd: cliDir });
  // Workspace metadata of the deploy is meaningless on the target host.
  await rm(join(staged, "pnpm-workspace.yaml"), { force: true });
  await mkdir(outDir, { recursive: true });
  const filename = `kitt-agent-${version}.tgz`;
  const tarball = join(outDir, filename);
  run("tar", ["-czf", tarball, "--owner=0", "--group=0", "-C", work, "package"]);
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(tarball)) hash.update(chunk);
  console.log(tarball);
  console.log(JSON.stringify({ filename, sha256: hash.digest("hex") }));
} finally {
  await rm(work, { recursive: true, force: true });
}
