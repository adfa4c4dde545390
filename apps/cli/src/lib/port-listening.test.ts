import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import { portListening } from "./port-listening.js";

const HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
const row = (n: number, local: string, remote: string, state: string) =>
  `  ${n}: ${local} ${remote} ${state} 00000000:00000000 00:00000000 00000000     0        0 ${1000 + n} 1 0000000000000000 100 0 0 10 0\n`;

const dirs: string[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function procNet(tables: { tcp?: string; tcp6?: string }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kitt-procnet-"));
  dirs.push(dir);
  await mkdir(dir, { recursive: true });
  if (tables.tcp !== undefined) await writeFile(join(dir, "tcp"), HEADER + tables.tcp);
  if (tables.tcp6 !== undefined) await writeFile(join(dir, "tcp6"), HEADER + tables.tcp6);
  return dir;
}

describe("portListening (is anything listening on the agent's port?)", () => {
  it("reads LISTEN rows of tcp and tcp6 for the port, on any address", async () => {
    // 8090 = 1F9A; 0.0.0.0:8090 listening, 127.0.0.1:40991 (A01F) connected to it.
    const v4 = await procNet({ tcp: row(0, "00000000:1F9A", "00000000:0000", "0A") + row(1, "0100007F:A01F", "0100007F:1F9A", "01"), tcp6: "" });
    expect(portListening(8090, v4)).toBe(true);
    // A connection from or to the port is not a listener.
    expect(portListening(40991, v4)).toBe(false);
    expect(portListening(9, v4)).toBe(false);
    // [::]:8090 in tcp6 only.
    const v6 = await procNet({ tcp: row(0, "0100007F:0016", "00000000:0000", "0A"), tcp6: row(0, "00000000000000000000000000000000:1F9A", "00000000000000000000000000000000:0000", "0A") });
    expect(portListening(8090, v6)).toBe(true);
    expect(portListening(22, v6)).toBe(true);
    expect(portListening(0x16a, v6)).toBe(false);
  });

  it("does not know when the tables cannot be read (the caller then asks over HTTP); a kernel without IPv6 has no tcp6", async () => {
    expect(portListening(8090, join(tmpdir(), "kitt-no-such-proc-net"))).toBeUndefined();
    const noV6 = await procNet({ tcp: row(0, "00000000:1F9A", "00000000:0000", "0A") });
    expect(portListening(8090, noV6)).toBe(true);
    expect(portListening(8091, noV6)).toBe(false);
  });

  it("sees a real listener on this machine come and go", async () => {
    const server = createServer();
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    expect(portListening(port)).toBe(true);
    await new Promise((r) => server.close(r));
    servers.splice(0);
    expect(portListening(port)).toBe(false);
  });
});
