import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { delimiter, isAbsolute, join } from "node:path";

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
 * Where `command` resolves on `env.PATH`, like `command -v`; a command given
 * with a slash is checked as a path (relative ones against `cwd`).
 */
export async function findOnPath(
  command: string,
  env: Record<string, string | undefined>,
  cwd: string = process.cwd(),
): Promise<string | undefined> {
  if (command === "") return undefined;
  if (command.includes("/")) {
    const path = isAbsolute(command) ? command : join(cwd, command);
    return (await isExecutableFile(path)) ? path : undefined;
  }
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, command);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}
