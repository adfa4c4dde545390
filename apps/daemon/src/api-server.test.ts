import type { Server } from "node:http";
import { request } from "node:https";
import type { AddressInfo } from "node:net";
import { connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";

import { makeTestPki } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { createApiServer, resolveApiLimits } from "./api-server.js";

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function tlsServer(idleTimeoutMs: number, maxConnections = 8) {
  const pki = await makeTestPki();
  const server = createApiServer({
    app: (_req, res) => res.end("ok"),
    tls: { cert: Buffer.from(pki.server.cert), key: Buffer.from(pki.server.key), ca: Buffer.from(pki.ca.cert) },
    limits: resolveApiLimits({ idleTimeoutMs, maxConnections }, undefined),
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { pki, port: (server.address() as AddressInfo).port };
}

function closedWithin(socket: { once(e: "close", f: () => void): unknown; resume(): unknown }, ms: number): Promise<boolean> {
  // A paused socket never reports the server's close: read (nothing) while waiting.
  socket.resume();
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    socket.once("close", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

describe("createApiServer over mTLS", () => {
  it("cuts a socket that never handshakes and one that handshakes and sends nothing, and still answers requests", async () => {
    const { pki, port } = await tlsServer(300);
    const raw = tcpConnect(port, "127.0.0.1");
    raw.on("error", () => {});
    const silent = tlsConnect({ port, host: "127.0.0.1", ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key });
    silent.on("error", () => {});
    await new Promise((r) => silent.once("secureConnect", r));
    // Cut after ~300 ms idle; the allowance is for a loaded CI machine (two cores, many test files at once).
    const [rawClosed, silentClosed] = await Promise.all([closedWithin(raw, 10_000), closedWithin(silent, 10_000)]);
    expect(rawClosed).toBe(true);
    expect(silentClosed).toBe(true);

    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ port, host: "127.0.0.1", path: "/", ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key }, (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve(text));
      });
      req.once("error", reject);
      req.end();
    });
    expect(body).toBe("ok");
  });

  it("closes connections beyond the cap at once and leaves the others open", async () => {
    const { port } = await tlsServer(60_000, 2);
    const kept = [tcpConnect(port, "127.0.0.1"), tcpConnect(port, "127.0.0.1")];
    for (const s of kept) s.on("error", () => {});
    await Promise.all(kept.map((s) => new Promise((r) => s.once("connect", r))));
    const extra = tcpConnect(port, "127.0.0.1");
    extra.on("error", () => {});
    expect(await closedWithin(extra, 2_000)).toBe(true);
    expect(kept.map((s) => s.destroyed)).toEqual([false, false]);
    for (const s of kept) s.destroy();
  });
});
