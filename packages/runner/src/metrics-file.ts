/**
 * Reads the benchmark's metrics.json without trusting it. The benchmark
 * writes the file, so it may be anything: a FIFO (opening it would block a
 * libuv worker for good, and with it cancel and shutdown), a symbolic or
 * hard link to another file (whose content must not travel to the server),
 * a huge file, or JSON nested deep enough to overflow the stack of whatever
 * walks it later. So: lstat first and regular files only, opened with
 * O_NOFOLLOW|O_NONBLOCK and checked again on the descriptor; a bounded
 * read; nesting counted before JSON.parse; and reasons that name what is
 * wrong without quoting any of the content.
 */
import { constants, type Stats } from "node:fs";
import { lstat, open } from "node:fs/promises";
import { join } from "node:path";

import { jsonTextTooDeep } from "@kitt/protocol";

export const METRICS_FILE = "metrics.json";

export interface MetricsLimits {
  /** Largest file read (the server stores it in one row). */
  maxBytes: number;
  /** Deepest nesting of arrays and objects taken. */
  maxDepth: number;
}

export const METRICS_LIMITS: MetricsLimits = { maxBytes: 8 * 1024 * 1024, maxDepth: 64 };

export type MetricsRead = { ok: true; data: Record<string, unknown> } | { ok: false; reason: string };

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = constants;

function refuse(reason: string): MetricsRead {
  return { ok: false, reason };
}

function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return "a symbolic link";
  if (st.isFIFO()) return "a FIFO";
  if (st.isDirectory()) return "a directory";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
  return "not a plain file";
}

/** Why a file is not one to read, or undefined when it is a lone regular file within the size limit. */
function fileProblem(st: Stats, maxBytes: number): string | undefined {
  if (!st.isFile()) return `${METRICS_FILE} is ${kindOf(st)}, not a regular file: not read`;
  if (st.nlink > 1) return `${METRICS_FILE} has ${st.nlink} hard links (another file's content): not read`;
  if (st.size > maxBytes) return `${METRICS_FILE} is ${st.size} bytes (limit ${maxBytes})`;
  return undefined;
}

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? "unknown error";
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** Reads at most `maxBytes + 1` bytes, so a file that grows while being read is caught, not followed. */
async function readBounded(path: string, maxBytes: number, expected: Stats): Promise<Buffer | string> {
  let handle;
  try {
    handle = await open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    if (errnoOf(err) === "ELOOP") return `${METRICS_FILE} is a symbolic link, not a regular file: not read`;
    return `${METRICS_FILE} could not be opened (${errnoOf(err)})`;
  }
  try {
    const st = await handle.stat();
    const problem = fileProblem(st, maxBytes);
    if (problem !== undefined) return problem;
    if (st.ino !== expected.ino || st.dev !== expected.dev) return `${METRICS_FILE} was replaced while being read: not read`;
    const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let length = 0;
    while (length < buf.length) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxBytes) return `${METRICS_FILE} grew past ${maxBytes} bytes while being read`;
    return buf.subarray(0, length);
  } finally {
    await handle.close();
  }
}

/**
 * The benchmark's metrics as an object, or a one-line reason why there are
 * none. Never throws, never blocks on what the benchmark left there, and
 * never puts any of the file's content into the reason.
 */
export async function readMetricsFile(outputDir: string, limits: MetricsLimits = METRICS_LIMITS): Promise<MetricsRead> {
  const path = join(outputDir, METRICS_FILE);
  let st: Stats;
  try {
    st = await lstat(path);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return refuse(`The benchmark wrote no ${METRICS_FILE}`);
    return refuse(`${METRICS_FILE} could not be read (${errnoOf(err)})`);
  }
  const problem = fileProblem(st, limits.maxBytes);
  if (problem !== undefined) return refuse(problem);
  let bytes: Buffer | string;
  try {
    bytes = await readBounded(path, limits.maxBytes, st);
  } catch (err) {
    return refuse(`${METRICS_FILE} could not be read (${errnoOf(err)})`);
  }
  if (typeof bytes === "string") return refuse(bytes);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return refuse(`${METRICS_FILE} is not valid UTF-8`);
  }
  const tooDeep = jsonTextTooDeep(text, limits.maxDepth);
  if (tooDeep !== undefined) return refuse(`${METRICS_FILE} ${tooDeep}`);
  let data: unknown;
  try {
    data = JSON.parse(text) as unknown;
  } catch (err) {
    // V8's message quotes the text; only the position is kept.
    const at = /at position (\d+)/.exec(err instanceof Error ? err.message : "")?.[1];
    return refuse(`${METRICS_FILE} is not valid JSON${at !== undefined ? ` (error at position ${at})` : ""}`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) return refuse(`${METRICS_FILE} is ${jsonType(data)}, not a JSON object`);
  return { ok: true, data: data as Record<string, unknown> };
}
