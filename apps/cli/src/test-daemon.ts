import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface DaemonCall {
  method: string;
  url: string;
  authorization: string | undefined;
  body: unknown;
}

export interface FakeDaemon {
  port: number;
  calls: DaemonCall[];
  close(): Promise<void>;
}

/** A stand-in for the daemon's local API on 127.0.0.1: records calls and answers as told. */
export async function fakeDaemon(answer: (call: DaemonCall) => { status: number; body: unknown }): Promise<FakeDaemon> {
  const calls: DaemonCall[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    let text = "";
    req.setEncoding("utf8").on("data", (c: string) => (text += c));
    req.on("end", () => {
      const call = { method: req.method ?? "", url: req.url ?? "", authorization: req.headers.authorization, body: text === "" ? undefined : (JSON.parse(text) as unknown) };
      calls.push(call);
      const { status, body } = answer(call);
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    calls,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A port nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
