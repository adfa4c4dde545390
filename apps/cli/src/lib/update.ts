import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";

import type { KittServerClient } from "@kitt/protocol";
import { KittError, ServerError, UsageError } from "@kitt/protocol";

import { installLayout, linkTarget, pointLink, type InstallLayout } from "./install-layout.js";
import { outputLine, runCommand as defaultRunner, type CommandRunner } from "./run-command.js";

/** The package name an agent package must carry (`npm pack` of apps/cli). */
export const PACKAGE_NAME = "@kitt/cli";
const TAR_TIMEOUT_MS = 120_000;

export interface UpdateResult {
  version: string;
  sha256: string;
  bytes: number;
  /** The version directory name now current. */
  current: string;
  /** What was current before (now `previous`), if anything. */
  previous: string | undefined;
  /** False when the downloaded package was the one already current. */
  switched: boolean;
  /** Path of the new CLI entry. */
  entry: string;
}

export interface UpdateDeps {
  home: string;
  run?: CommandRunner;
}

/** What to do when the server only has the original agent's package. */
const FROM_REGISTRY_HINT = "update this agent with kitt-agent update --from-registry [VERSION], or serve a package made by apps/cli/scripts/pack-agent.mjs";

/**
 * A stock KITT server builds the original Python agent's sdist
 * (`kitt_agent-0.4.2.tar.gz`, or `kitt-agent-...`): never this agent's.
 */
export function isPythonSdistName(filename: string): boolean {
  return /^kitt[_-]agent-\d[^/]*\.tar\.gz$/i.test(filename);
}

function foreignPackage(what: string): KittError {
  return new KittError(`the KITT server offers the original Python agent's package (${what}), not this agent's: nothing changed; ${FROM_REGISTRY_HINT}`, {
    code: "FOREIGN_PACKAGE",
  });
}

/** The top folder of an unpacked Python sdist (`<name>-<version>/PKG-INFO`), if that is what `staging` holds. */
async function pythonSdistIn(staging: string): Promise<string | undefined> {
  for (const name of await readdir(staging).catch(() => [] as string[])) {
    if (existsSync(join(staging, name, "PKG-INFO")) || existsSync(join(staging, name, "pyproject.toml"))) return name;
  }
  return undefined;
}

/** Reads and checks package/package.json of an unpacked agent package. */
async function readManifest(dir: string): Promise<{ version: string }> {
  let pkg: { name?: unknown; version?: unknown };
  try {
    pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { name?: unknown; version?: unknown };
  } catch {
    const sdist = await pythonSdistIn(dirname(dir));
    if (sdist !== undefined) throw foreignPackage(`a Python sdist, ${sdist}`);
    throw new KittError("the agent package has no readable package/package.json (expected an npm pack tarball)", { code: "BAD_PACKAGE" });
  }
  if (pkg.name !== PACKAGE_NAME) {
    throw new KittError(`the agent package is ${JSON.stringify(pkg.name)}, not ${PACKAGE_NAME}`, { code: "BAD_PACKAGE" });
  }
  if (typeof pkg.version !== "string" || !/^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/.test(pkg.version)) {
    throw new KittError(`the agent package has an invalid version ${JSON.stringify(pkg.version)}`, { code: "BAD_PACKAGE" });
  }
  if (!existsSync(join(dir, "bin", "run.js")) || !existsSync(join(dir, "dist", "main.js"))) {
    throw new KittError("the agent package lacks bin/run.js or dist/main.js", { code: "BAD_PACKAGE" });
  }
  return { version: pkg.version };
}

/** Keeps current and previous, removes older versions: a host updated weekly must not fill its disk. */
async function prune(layout: InstallLayout): Promise<void> {
  const keep = new Set([await linkTarget(layout.current), await linkTarget(layout.previous)]);
  for (const name of await readdir(layout.versions)) {
    if (!keep.has(name)) await rm(join(layout.versions, name), { recursive: true, force: true });
  }
}

/**
 * Downloads the agent package (checked against the server's SHA-256 by the
 * client: a mismatch or a missing digest aborts with nothing changed),
 * unpacks it into versions/<version>-<sha12>, checks it, then switches the
 * `current` link in one rename, keeping the old target as `previous`.
 */
export async function updateFromServer(client: KittServerClient, deps: UpdateDeps): Promise<UpdateResult> {
  const layout = installLayout(deps.home);
  const run = deps.run ?? defaultRunner;
  await mkdir(layout.versions, { recursive: true });
  // A stock KITT server offers the original agent's Python sdist there, or answers 500 when it cannot build one.
  let offered: string;
  try {
    offered = (await client.getPackageDigest()).filename;
  } catch (err) {
    if (err instanceof ServerError && err.status >= 500) {
      throw new KittError(
        `the KITT server has no agent package to offer (${err.message}); a stock KITT server only builds the original Python agent's there: ${FROM_REGISTRY_HINT}`,
        { code: "NO_PACKAGE", cause: err },
      );
    }
    throw err;
  }
  if (isPythonSdistName(offered)) throw foreignPackage(offered);
  const pkg = await client.downloadPackage(layout.downloads);
  try {
    return await installUnpacked(layout, run, pkg.path, pkg.filename, { sha: pkg.sha256, bytes: pkg.bytes });
  } finally {
    await rm(pkg.path, { force: true });
  }
}

/**
 * Unpacks a verified npm-pack tarball into versions/<version>-<sha12>,
 * checks it, optionally completes it (`prepare`, e.g. installing its
 * dependencies) and switches `current` to it in one rename, keeping the old
 * target as `previous`. Nothing changes when any step fails.
 */
export async function installUnpacked(
  layout: InstallLayout,
  run: CommandRunner,
  tarball: string,
  filename: string,
  digest: { sha: string; bytes: number },
  options: { expectVersion?: string; prepare?: (dir: string, version: string) => Promise<void> } = {},
): Promise<UpdateResult> {
  const staging = join(layout.versions, `.staging-${randomBytes(6).toString("hex")}`);
  try {
    await mkdir(staging);
    // GNU tar refuses members with ".." and strips leading "/": the archive cannot write outside staging.
    const result = await run("tar", ["-xzf", tarball, "-C", staging, "--no-same-owner"], { timeoutMs: TAR_TIMEOUT_MS });
    if (result.code !== 0) {
      throw new KittError(`tar -xzf ${filename} failed (exit ${result.code}): ${outputLine(result)}`, { code: "BAD_PACKAGE" });
    }
    const unpacked = join(staging, "package");
    const { version } = await readManifest(unpacked);
    if (options.expectVersion !== undefined && version !== options.expectVersion) {
      throw new KittError(`${filename} holds ${PACKAGE_NAME}@${version}, not the ${options.expectVersion} the registry listed it as`, { code: "BAD_PACKAGE" });
    }
    const name = `${version}-${digest.sha.slice(0, 12)}`;
    const target = join(layout.versions, name);
    const before = await linkTarget(layout.current);
    const entry = join(layout.current, "bin", "run.js");
    if (before === name) {
      return { version, sha256: digest.sha, bytes: digest.bytes, current: name, previous: await linkTarget(layout.previous), switched: false, entry };
    }
    if (!existsSync(target)) {
      await options.prepare?.(unpacked, version);
      await rename(unpacked, target);
    }
    if (before !== undefined) await pointLink(layout, layout.previous, before);
    await pointLink(layout, layout.current, name);
    await prune(layout);
    return { version, sha256: digest.sha, bytes: digest.bytes, current: name, previous: before, switched: true, entry };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Swaps `current` and `previous`. */
export async function rollback(deps: UpdateDeps): Promise<{ current: string; previous: string }> {
  const layout = installLayout(deps.home);
  const previous = await linkTarget(layout.previous);
  const current = await linkTarget(layout.current);
  if (previous === undefined || !existsSync(join(layout.versions, previous))) {
    throw new UsageError(`nothing to roll back to (${layout.previous} does not exist)`);
  }
  await pointLink(layout, layout.current, previous);
  if (current !== undefined) await pointLink(layout, layout.previous, current);
  return { current: previous, previous: current ?? "" };
}
