/**
 * A tiny KITT build context for `kitt-agent build` tests: the layout the
 * real server hands out (a `.tar.gz` whose root folder is
 * `kitt-build-context/`, built with that folder as the Docker context and
 * `docker/web/Dockerfile` as the Dockerfile), holding an image that needs no
 * registry: FROM scratch, the host's busybox and a fake `kitt` script.
 */
import { execFile } from "node:child_process";
import { chmod, copyFile, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";

import { makeTempDir } from "./temp-dir.js";

const execFileAsync = promisify(execFile);

/** The root folder of every build context. */
export const KITT_BUILD_CONTEXT_ROOT = "kitt-build-context";

/** The Dockerfile of the test context; COPY paths are relative to the context root. */
export const KITT_BUILD_CONTEXT_DOCKERFILE = `# Fake KITT image for kitt-agent build tests (@kitt/testkit), not the real KITT.
FROM scratch
COPY bin/busybox /bin/busybox
COPY bin/kitt /usr/local/bin/kitt
LABEL org.kitt.fake="build-context"
ENTRYPOINT ["/usr/local/bin/kitt"]
`;

/** The image's /usr/local/bin/kitt (busybox sh: the image has no /bin/sh). */
export const KITT_BUILD_CONTEXT_SCRIPT = `#!/bin/busybox sh
# Fake KITT benchmark CLI of the build-context test image (@kitt/testkit).
echo "kitt (fake, from a kitt-agent build test) $*"
`;

export interface KittBuildContextOptions {
  /** The busybox copied into the image (default /bin/busybox, else /usr/bin/busybox). The build never runs it. */
  busyboxPath?: string;
  /** More files, by path relative to the context root (e.g. to make two contexts differ). */
  extraFiles?: Record<string, string>;
}

/**
 * The build context as the server would serve it: gzip of a tar with fixed
 * owners, mtimes and order, so the same inputs give the same bytes (and
 * digest). Holds `docker/web/Dockerfile`, `bin/busybox`, `bin/kitt` and a
 * symlink `bin/sh -> busybox` (a link that stays inside the context).
 */
export async function makeKittBuildContext(options: KittBuildContextOptions = {}): Promise<Buffer> {
  const busybox = await findBusybox(options.busyboxPath);
  const work = await makeTempDir("kitt-build-context-");
  try {
    const root = join(work.path, KITT_BUILD_CONTEXT_ROOT);
    const files: Record<string, string> = {
      "docker/web/Dockerfile": KITT_BUILD_CONTEXT_DOCKERFILE,
      "bin/kitt": KITT_BUILD_CONTEXT_SCRIPT,
      ...options.extraFiles,
    };
    for (const [path, content] of Object.entries(files)) {
      if (path.startsWith("/") || path.split("/").includes("..")) throw new Error(`makeKittBuildContext: ${path} is not inside the context`);
      await mkdir(dirname(join(root, path)), { recursive: true });
      await writeFile(join(root, path), content);
    }
    await chmod(join(root, "bin/kitt"), 0o755);
    await copyFile(busybox, join(root, "bin/busybox"));
    await chmod(join(root, "bin/busybox"), 0o755);
    await symlink("busybox", join(root, "bin/sh"));
    const tarPath = join(work.path, "context.tar");
    await execFileAsync(
      "tar",
      ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "--format=gnu", "-cf", tarPath, "-C", work.path, KITT_BUILD_CONTEXT_ROOT],
      { timeout: 60_000 },
    );
    return gzipSync(await readFile(tarPath));
  } finally {
    await work.cleanup();
  }
}

async function findBusybox(path?: string): Promise<string> {
  const candidates = path !== undefined ? [path] : ["/bin/busybox", "/usr/bin/busybox"];
  for (const candidate of candidates) {
    if (await stat(candidate).then((s) => s.isFile(), () => false)) return candidate;
  }
  throw new Error(`makeKittBuildContext needs a busybox binary (none at ${candidates.join(" or ")}): apt-get install busybox-static`);
}
