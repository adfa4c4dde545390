import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { delimiter, isAbsolute, join, resolve } from "node:path";

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    const info = await stat(path);
    if (!info.isFile()) return false;
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where `command` would be found: a name is searched on `PATH` (from `env`),
 * a path (anything with a slash) is taken as is. Undefined when there is no
 * executable file there, so the caller can say so in words instead of
 * surfacing spawn's bare ENOENT.
 */
export async function findExecutable(
  command: string,
  env: Record<string, string | undefined>,
  cwd: string = process.cwd(),
): Promise<string | undefined> {
  if (command === "") return undefined;
  if (command.includes("/")) {
    const full = isAbsolute(command) ? command : resolve(cwd, command);
    return (await isExecutableFile(full)) ? full : undefined;
  }
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, command);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}
