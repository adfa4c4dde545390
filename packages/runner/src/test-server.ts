/** Test helpers: the testkit's fake KITT server with one agent, and a client for it. */
import { KittServerClient, type CallOptions } from "@kitt/protocol";
import { startFakeKittServer, type FakeKittServer } from "@kitt/testkit";

import type { LogTransport } from "./log-shipper.js";

export const AGENT_TOKEN = "agent-token-0123456789";

export interface ServerFixture {
  server: FakeKittServer;
  client: KittServerClient;
  agentId: string;
  /** Queues a run_test for the agent and returns its test id. */
  newTest(): string;
  close(): Promise<void>;
}

export async function startServer(): Promise<ServerFixture> {
  const server = await startFakeKittServer();
  const agent = server.provisionAgent("gpu-1", AGENT_TOKEN);
  const client = new KittServerClient({ serverUrl: server.url, token: AGENT_TOKEN, timeoutMs: 5000, connectTimeoutMs: 1000 });
  return {
    server,
    client,
    agentId: agent.id,
    newTest: () => server.queueTest({ agent_name: "gpu-1", model_path: "/models/a", engine_name: "vllm", suite_name: "quick" }).id,
    close: async () => {
      client.close();
      await server.close();
    },
  };
}

/** Every line the server holds for a test, batches split back into lines. */
export function serverLines(server: FakeKittServer, testId: string): string[] {
  return server.logLines(testId).flatMap((row) => row.split("\n"));
}

/** Wraps a transport to measure how many requests were in flight at once. */
export function countingTransport(inner: LogTransport): LogTransport & { maxInFlight: number; requests: number } {
  let inFlight = 0;
  const t = {
    maxInFlight: 0,
    requests: 0,
    async postLog(testId: string, line: string, opts?: CallOptions): Promise<void> {
      inFlight++;
      t.requests++;
      t.maxInFlight = Math.max(t.maxInFlight, inFlight);
      try {
        await inner.postLog(testId, line, opts);
      } finally {
        inFlight--;
      }
    },
  };
  return t;
}
