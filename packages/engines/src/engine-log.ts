import { copyFile, mkdir, open, rename, stat, truncate } from "node:fs/promises";
import { dirname } from "node:path";

/** Engine output goes to a file the engine holds itself, so it keeps logging while the agent restarts. */
export async function openEngineLog(path: string): Promise<{ fd: number; close(): Promise<void> }> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // A new start begins a new file; the previous run's output stays one rotation back.
  const size = await stat(path).then((s) => s.size, () => 0);
  if (size > 0) await rename(path, `${path}.1`);
  // O_APPEND: after a copy-and-truncate rotation the engine's writes land at the new end, not past a hole.
  const handle = await open(path, "a", 0o600);
  return { fd: handle.fd, close: () => handle.close() };
}

/**
 * Copy-and-truncate rotation for a log an engine is still writing (its
 * descriptor cannot be swapped from outside). Lines written between the copy
 * and the truncate are lost: acceptable for a log, unlike a full disk.
 */
export async function rotateIfLarge(path: string, maxBytes: number): Promise<boolean> {
  const size = await stat(path).then((s) => s.size, () => 0);
  if (size <= maxBytes) return false;
  await copyFile(path, `${path}.1`);
  await truncate(path, 0);
  return true;
}

/** Reads what an engine appends to its log, line by line, from where it was when created. */
export class LogFollower {
  private offset: number;
  private partial = "";

  constructor(
    private readonly path: string,
    offset = 0,
  ) {
    this.offset = offset;
  }

  /** Complete new lines since the last call (and the unfinished tail when `flush`). */
  async read(flush = false): Promise<string[]> {
    const handle = await open(this.path, "r").catch(() => undefined);
    if (handle === undefined) return [];
    try {
      const { size } = await handle.stat();
      if (size < this.offset) this.offset = 0; // rotated under us
      const chunks: Buffer[] = [];
      while (this.offset < size) {
        const buffer = Buffer.alloc(Math.min(size - this.offset, 1 << 20));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.offset);
        if (bytesRead === 0) break;
        chunks.push(buffer.subarray(0, bytesRead));
        this.offset += bytesRead;
      }
      const lines = (this.partial + Buffer.concat(chunks).toString("utf8")).split("\n");
      this.partial = lines.pop() ?? "";
      if (flush && this.partial !== "") {
        lines.push(this.partial);
        this.partial = "";
      }
      return lines.map((l) => l.replace(/\r$/, ""));
    } finally {
      await handle.close();
    }
  }
}

/** The last `count` non-empty lines of a log file (for failure messages). */
export async function lastLines(path: string, count: number, maxBytes = 64 * 1024): Promise<string[]> {
  const handle = await open(path, "r").catch(() => undefined);
  if (handle === undefined) return [];
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - maxBytes);
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    return buffer
      .toString("utf8")
      .split("\n")
      .map((l) => l.replace(/\r$/, ""))
      .filter((l) => l.trim() !== "")
      .slice(-count);
  } finally {
    await handle.close();
  }
}
