import { randomBytes } from "node:crypto";
import { readlink, rename, symlink, unlink } from "node:fs/promises";
import { basename, join } from "node:path";

/**
 * Where updates live:
 *   <root>/versions/<version>-<sha12>/   one unpacked package each
 *   <root>/current  -> versions/...      what bin/run.js the service runs
 *   <root>/previous -> versions/...      what --rollback goes back to
 */
export interface InstallLayout {
  root: string;
  versions: string;
  current: string;
  previous: string;
  downloads: string;
}

export function installLayout(home: string): InstallLayout {
  const root = join(home, ".kitt", "agent");
  return {
    root,
    versions: join(root, "versions"),
    current: join(root, "current"),
    previous: join(root, "previous"),
    downloads: join(root, "downloads"),
  };
}

/** The version directory name a link points at, or undefined when there is no link. */
export async function linkTarget(link: string): Promise<string | undefined> {
  try {
    return basename(await readlink(link));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Points `link` at versions/<name> in one rename: a reader sees the old target or the new, never none. */
export async function pointLink(layout: InstallLayout, link: string, name: string): Promise<void> {
  const tmp = join(layout.root, `.link-${randomBytes(6).toString("hex")}`);
  await symlink(join("versions", name), tmp);
  try {
    await rename(tmp, link);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
