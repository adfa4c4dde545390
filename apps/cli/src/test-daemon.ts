import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

import { type AgentConfig, writeAgentConfig } from "@kitt/protocol";

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

/**
 * `<home>/.kitt/agent.yaml` for an agent of `serverUrl` on 127.0.0.1 at a port
 * nothing listens on yet, plus `extra` (storage, benchmark...): the start of
 * every end-to-end CLI test.
 */
export async function writeLocalAgentConfig(home: string, serverUrl: string, agent: { name: string; token: string }, extra: Partial<AgentConfig> = {}): Promise<void> {
  await writeAgentConfig(join(home, ".kitt", "agent.yaml"), {
    server_url: serverUrl,
    token: agent.token,
    name: agent.name,
    host: "127.0.0.1",
    port: await closedPort(),
    ...extra,
  });
}
