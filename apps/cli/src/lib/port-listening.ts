import { openSync, readSync, closeSync } from "node:fs";
import { join } from "node:path";

/** Bigger than this (a host with tens of thousands of sockets), the tables are not read: the caller just asks. */
const MAX_TABLE_BYTES = 4 * 1024 * 1024;
const LISTEN = "0A";

/** The file's text, or undefined when it cannot be read or is too big. */
function readTable(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return undefined;
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(256 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > MAX_TABLE_BYTES) return undefined;
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks).toString("latin1");
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether some socket of this network namespace listens on TCP `port` (any
 * address, IPv4 or IPv6), from the kernel's tables in /proc/net/tcp and
 * tcp6; undefined when they cannot be read (not Linux, too big).
 *
 * `status` asks this before it loads an HTTP client: when nothing listens on
 * the agent's port, a connection would be refused, so the daemon is not
 * running, and two small file reads answer that faster than Node's HTTP
 * client can load. Anything listening (the daemon or not) is asked over HTTP.
 */
export function portListening(port: number, procNet = "/proc/net"): boolean | undefined {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  let readAny = false;
  for (const name of ["tcp", "tcp6"]) {
    const table = readTable(join(procNet, name));
    // tcp6 is absent when the kernel has no IPv6: that table has nothing to say.
    if (table === undefined) {
      if (name === "tcp") return undefined;
      continue;
    }
    readAny = true;
    for (const line of table.split("\n").slice(1)) {
      // "  1: 0100007F:8017 00000000:0000 0A ...": local address, remote address, state.
      const fields = line.trim().split(/\s+/);
      if (fields.length < 4) continue;
      const local = fields[1] ?? "";
      if (fields[3] === LISTEN && local.endsWith(hex)) return true;
    }
  }
  return readAny ? false : undefined;
}
