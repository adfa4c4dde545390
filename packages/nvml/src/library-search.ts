import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * Whether the dynamic loader could find `name` (a soname such as
 * libnvidia-ml.so.1, or a path), answered without dlopen: koffi, which does
 * the dlopen, costs ~9 MiB of resident memory once loaded, and most hosts
 * an agent runs on for months (CI runners, CPU nodes) have no NVML at all.
 *
 * A path: the file exists. A soname: it is in /etc/ld.so.cache (the loader's
 * cache, which `ldconfig` builds from the directories below: the name is
 * looked for in its bytes), or a file of that name is in LD_LIBRARY_PATH, the
 * directories /etc/ld.so.conf names (with its `include` globs), or the
 * loader's trusted directories. "Maybe" is enough: a false yes only means
 * dlopen runs and reports the real error, as it always did.
 */
export function libraryFindable(name: string, env: NodeJS.ProcessEnv = process.env, root = "/"): boolean {
  const at = (path: string) => join(root, path);
  if (name.includes("/")) return existsSync(at(name));
  try {
    if (readFileSync(at("/etc/ld.so.cache")).includes(name)) return true;
  } catch {
    // No cache (a minimal image, musl): the directories decide.
  }
  return searchDirs(env, at).some((dir) => existsSync(join(at(dir), name)));
}

const TRUSTED = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"];
const MULTIARCH = ["x86_64-linux-gnu", "aarch64-linux-gnu"];

function searchDirs(env: NodeJS.ProcessEnv, at: (path: string) => string): string[] {
  const fromEnv = (env.LD_LIBRARY_PATH ?? "").split(":").filter((d) => d.startsWith("/"));
  const trusted = TRUSTED.flatMap((d) => [d, ...MULTIARCH.map((m) => `${d}/${m}`)]);
  return [...fromEnv, ...confDirs("/etc/ld.so.conf", at, 0), ...trusted];
}

/** The directories an ld.so.conf names, following `include` lines (a `*` glob in the file name) up to a few levels. */
function confDirs(file: string, at: (path: string) => string, depth: number): string[] {
  let text: string;
  try {
    text = readFileSync(at(file), "utf8");
  } catch {
    return [];
  }
  const dirs: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (line === "") continue;
    const include = /^include\s+(\S+)$/.exec(line);
    if (include === null) {
      if (line.startsWith("/")) dirs.push(line);
      continue;
    }
    if (depth >= 4) continue;
    const pattern = include[1] as string;
    const base = pattern.split("/").at(-1) as string;
    const parent = pattern.startsWith("/") ? dirname(pattern) : join(dirname(file), dirname(pattern));
    const match = new RegExp(`^${base.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
    let names: string[];
    try {
      names = readdirSync(at(parent)).filter((n) => match.test(n)).sort();
    } catch {
      continue;
    }
    for (const n of names) dirs.push(...confDirs(join(parent, n), at, depth + 1));
  }
  return dirs;
}
