/**
 * The KITT build context, from the server's `.tar.gz` to the tar stream the
 * engine builds from. The archive comes from the network, so nothing in it is
 * trusted: every entry is checked before a byte is written (regular files,
 * directories and symlinks that stay inside the `kitt-build-context/` root;
 * bounded size and count), and only the checked entries are extracted.
 */
import { createReadStream } from "node:fs";
import { lstat, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";

import { KittError } from "@kitt/protocol";
import type { ReadEntry } from "tar";

/**
 * tar (with zlib and its stream machinery) is loaded on first use: only a
 * build needs it, and at import it would cost the idle daemon about 5 MiB.
 */
const loadTar = () => import("tar");

/** The one folder at the root of every build context archive. */
export const BUILD_CONTEXT_ROOT = "kitt-build-context";
/** The Dockerfile, relative to the context root. */
export const KITT_DOCKERFILE = "docker/web/Dockerfile";

export interface BuildContextLimits {
  /** Bytes of file content, all entries together (default 4 GiB). */
  maxBytes?: number;
  /** Entries of any kind (default 100,000). */
  maxEntries?: number;
}

export interface UnpackedBuildContext {
  /** `<destDir>/kitt-build-context`: the Docker build context. */
  contextDir: string;
  /** The Dockerfile relative to contextDir (KITT_DOCKERFILE). */
  dockerfile: string;
  entries: number;
  bytes: number;
}

/** The archive is not an acceptable build context; the message names the entry. */
export class BuildContextError extends KittError {
  constructor(message: string) {
    super(`build context: ${message}`, { code: "BAD_BUILD_CONTEXT" });
  }
}

const DEFAULT_MAX_BYTES = 4 * 1024 ** 3;
const DEFAULT_MAX_ENTRIES = 100_000;
const MAX_LINK_HOPS = 40;
const FILE_TYPES = new Set(["File", "OldFile", "ContiguousFile"]);

type Kind = "file" | "dir" | "symlink";

interface Checked {
  /** Normalised path (`kitt-build-context/a/b`) -> kind; the archive's own `.` entry is not in it. */
  kinds: Map<string, Kind>;
  links: Map<string, string>;
  entries: number;
  bytes: number;
}

/** An entry name fit for a one-line message. */
function named(raw: string): string {
  return JSON.stringify(raw.length > 200 ? `${raw.slice(0, 200)}...` : raw);
}

/** `./kitt-build-context/a/` -> `kitt-build-context/a`; "" for the archive's own `.`. */
function normalise(raw: string): string {
  if (raw.startsWith("/")) throw new BuildContextError(`refusing entry ${named(raw)}: absolute path`);
  const parts = raw.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new BuildContextError(`refusing entry ${named(raw)}: ".." in its path`);
  if (parts.length > 0 && parts[0] !== BUILD_CONTEXT_ROOT) throw new BuildContextError(`refusing entry ${named(raw)}: outside the ${BUILD_CONTEXT_ROOT}/ root`);
  return parts.join("/");
}

function kindOf(entry: ReadEntry): Kind {
  if (FILE_TYPES.has(entry.type)) return "file";
  if (entry.type === "Directory") return "dir";
  if (entry.type === "SymbolicLink") return "symlink";
  const what = entry.type === "Link" ? "a hard link" : entry.type === "CharacterDevice" || entry.type === "BlockDevice" ? "a device" : entry.type === "FIFO" ? "a FIFO" : `of type ${entry.type}`;
  throw new BuildContextError(`refusing entry ${named(entry.path)}: ${what} (only files, directories and symlinks are allowed)`);
}

function ancestors(path: string): string[] {
  const parts = path.split("/");
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join("/"));
}

/** One entry against what came before it; records it. */
function checkEntry(entry: ReadEntry, seen: Checked, implied: Set<string>, limits: Required<BuildContextLimits>): void {
  const path = normalise(entry.path);
  const kind = kindOf(entry);
  if (++seen.entries > limits.maxEntries) throw new BuildContextError(`more than ${limits.maxEntries} entries`);
  if (path === "") {
    if (kind !== "dir") throw new BuildContextError(`refusing entry ${named(entry.path)}: the archive root must be a directory`);
    return;
  }
  if (kind === "file") {
    seen.bytes += entry.size;
    if (seen.bytes > limits.maxBytes) throw new BuildContextError(`more than ${limits.maxBytes} bytes unpacked (at ${named(entry.path)})`);
  }
  if (path === BUILD_CONTEXT_ROOT && kind !== "dir") throw new BuildContextError(`refusing entry ${named(entry.path)}: ${BUILD_CONTEXT_ROOT} must be a directory`);
  const before = seen.kinds.get(path);
  if (before !== undefined && !(before === "dir" && kind === "dir")) throw new BuildContextError(`refusing entry ${named(entry.path)}: it appears twice`);
  // Nothing is written through a symlink or below a file, and no link or file replaces a directory already holding entries.
  for (const up of ancestors(path)) {
    const above = seen.kinds.get(up);
    if (above !== undefined && above !== "dir") throw new BuildContextError(`refusing entry ${named(entry.path)}: below the ${above} ${named(up)}`);
  }
  if (kind !== "dir" && implied.has(path)) throw new BuildContextError(`refusing entry ${named(entry.path)}: a ${kind} where earlier entries have a directory`);
  for (const up of ancestors(path)) implied.add(up);
  seen.kinds.set(path, kind);
  if (kind === "symlink") {
    const target = entry.linkpath ?? "";
    if (target === "") throw new BuildContextError(`refusing entry ${named(entry.path)}: a symlink without a target`);
    if (target.startsWith("/")) throw new BuildContextError(`refusing entry ${named(entry.path)}: symlink to the absolute path ${named(target)}`);
    seen.links.set(path, target);
  }
}

/**
 * Where a symlink leads, resolved component by component through the other
 * links of the archive (so that `a -> .` then `b -> a/../x` is seen for what
 * it is); undefined when it leaves the root or loops.
 */
function resolveLink(path: string, links: Map<string, string>): string | undefined {
  const stack = path.split("/").slice(0, -1);
  let hops = 0;
  const walk = (components: string[]): boolean => {
    for (const part of components) {
      if (part === "" || part === ".") continue;
      if (part === "..") {
        stack.pop();
        if (stack.length === 0) return false;
        continue;
      }
      stack.push(part);
      const target = links.get(stack.join("/"));
      if (target === undefined) continue;
      if (++hops > MAX_LINK_HOPS || target.startsWith("/")) return false;
      stack.pop();
      if (!walk(target.split("/"))) return false;
    }
    return true;
  };
  const target = links.get(path) ?? "";
  const ok = walk(target.split("/"));
  return ok && stack[0] === BUILD_CONTEXT_ROOT ? stack.join("/") : undefined;
}

/** Reads the whole archive, checking every entry; writes nothing. */
async function checkArchive(tgzPath: string, limits: Required<BuildContextLimits>): Promise<Checked> {
  const seen: Checked = { kinds: new Map(), links: new Map(), entries: 0, bytes: 0 };
  const implied = new Set<string>();
  const { Parser } = await loadTar();
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    const input = createReadStream(tgzPath);
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      input.destroy();
      parser.abort(err instanceof Error ? err : new Error(String(err)));
      reject(err instanceof BuildContextError ? err : new BuildContextError(`not a readable .tar.gz: ${oneLine(err)}`));
    };
    const parser = new Parser({
      strict: true,
      onReadEntry: (entry) => {
        try {
          if (!failed) checkEntry(entry, seen, implied, limits);
        } catch (err) {
          fail(err);
        }
        entry.resume();
      },
    });
    parser.on("error", fail);
    parser.on("end", () => {
      if (!failed) resolve();
    });
    input.on("error", fail);
    input.pipe(parser);
  });
  for (const [path, target] of seen.links) {
    if (resolveLink(path, seen.links) === undefined) throw new BuildContextError(`refusing entry ${named(path)}: symlink to ${named(target)} leaves the context`);
  }
  const dockerfile = `${BUILD_CONTEXT_ROOT}/${KITT_DOCKERFILE}`;
  if (seen.kinds.get(dockerfile) !== "file") throw new BuildContextError(`no ${KITT_DOCKERFILE} (a regular file) under ${BUILD_CONTEXT_ROOT}/`);
  return seen;
}

function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0]?.trim() ?? "";
}

/**
 * Unpacks the server's build context into `destDir` (created if needed; it
 * must not already hold a `kitt-build-context`) after checking every entry.
 * Throws BuildContextError naming the first entry refused, before anything
 * is written.
 */
export async function unpackBuildContext(tgzPath: string, destDir: string, limits: BuildContextLimits = {}): Promise<UnpackedBuildContext> {
  const bounds = { maxBytes: limits.maxBytes ?? DEFAULT_MAX_BYTES, maxEntries: limits.maxEntries ?? DEFAULT_MAX_ENTRIES };
  const checked = await checkArchive(tgzPath, bounds);
  const contextDir = join(destDir, BUILD_CONTEXT_ROOT);
  await mkdir(destDir, { recursive: true, mode: 0o700 });
  if (await lstat(contextDir).then(() => true, () => false)) throw new BuildContextError(`${contextDir} already exists`);
  const { extract } = await loadTar();
  try {
    await extract({
      file: tgzPath,
      cwd: destDir,
      strict: true,
      preserveOwner: false,
      // Only what the check let through; never setuid/setgid/sticky bits, and always readable and removable by us.
      filter: (path, entry) => {
        const e = entry as ReadEntry;
        let normalised: string;
        try {
          normalised = normalise(path);
        } catch {
          return false;
        }
        const kind = checked.kinds.get(normalised);
        if (kind === undefined || FILE_TYPES.has(e.type) !== (kind === "file") || (e.type === "Directory") !== (kind === "dir")) return false;
        if (typeof e.mode === "number") e.mode = (e.mode & 0o777) | (kind === "dir" ? 0o700 : 0o600);
        return true;
      },
    });
  } catch (err) {
    throw new BuildContextError(`unpacking failed: ${oneLine(err)}`);
  }
  return { contextDir, dockerfile: KITT_DOCKERFILE, entries: checked.entries, bytes: checked.bytes };
}

/**
 * A tar stream of `dir` (symlinks kept as links, owners left out) for
 * ContainerRuntime.buildImage.
 */
export function packContext(dir: string): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    const { create } = await loadTar();
    yield* create({ cwd: dir, portable: true, follow: false }, ["."]) as AsyncIterable<Buffer>;
  }
  return Readable.from(chunks(), { objectMode: false });
}
