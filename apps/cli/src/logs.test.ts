import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";

import { cliEnv, runCli } from "./test-cli.js";

const tempDir = useTempDir(afterEach);
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const TOKEN = "logs-token-abcdef";

function logEvent(res: ServerResponse, id: number, line: string): void {
  res.write(`id: ${id}\nevent: log\ndata: ${JSON.stringify({ command_id: "cmd1", line })}\n\n`);
}

/**
 * An SSE endpoint that behaves like the daemon's and drops the first
 * connection after three lines (the socket destroyed, no end event).
 */
async function flakySse(): Promise<{ port: number; requests: Array<{ url: string; lastEventId: string | undefined; authorization: string | undefined }> }> {
  const requests: Array<{ url: string; lastEventId: string | undefined; authorization: string | undefined }> = [];
  const all = ["line 1", "line 2", "line 3", "line 4", "line 5"];
  const server = createServer((req, res) => {
    const lastEventId = req.headers["last-event-id"] as string | undefined;
    requests.push({ url: req.url ?? "", lastEventId, authorization: req.headers.authorization });
    if (req.url !== "/api/logs/cmd1") {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"no logs"}');
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write("retry: 50\n\n");
    const after = Number(lastEventId ?? 0);
    if (requests.length === 1) {
      for (let i = 1; i <= 3; i++) logEvent(res, i, all[i - 1] as string);
      // Let the client read them, then cut the connection mid-job.
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    }
    for (let i = after + 1; i <= all.length; i++) logEvent(res, i, all[i - 1] as string);
    res.write(": keepalive\n\n");
    res.end(`event: end\ndata: ${JSON.stringify({ command_id: "cmd1", status: "failed", error: "Exit 3" })}\n\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, requests };
}

describe("kitt-agent logs", () => {
  it("--follow survives a dropped connection, resuming with Last-Event-ID without repeating lines", async () => {
    const sse = await flakySse();
    const home = await tempDir();
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: "http://kitt:1", token: TOKEN, port: sse.port });
    const r = await runCli(["logs", "cmd1", "--follow"], cliEnv(home));
    expect(r.stdout).toBe("line 1\nline 2\nline 3\nline 4\nline 5\n");
    expect(r.stderr).toContain("(log stream dropped; reconnecting after event 3)");
    expect(r.stderr).toContain("(job failed: Exit 3)");
    expect(r.code).toBe(1);
    expect(sse.requests.map((q) => q.lastEventId)).toEqual([undefined, "3"]);
    expect(sse.requests.every((q) => q.authorization === `Bearer ${TOKEN}`)).toBe(true);
  });

  it("without --follow prints what is there and exits 0; unknown job and no daemon are one-line errors", async () => {
    const sse = await flakySse();
    const home = await tempDir();
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: "http://kitt:1", token: TOKEN, port: sse.port });
    const r = await runCli(["logs", "cmd1"], cliEnv(home));
    expect(r.stdout).toBe("line 1\nline 2\nline 3\n");
    expect(r.code).toBe(0);
    const missing = await runCli(["logs", "nope"], cliEnv(home));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("Error: the daemon has no log for command nope\n");
    const bad = await runCli(["logs", "../etc"], cliEnv(home));
    expect(bad.code).toBe(2);
  });
});
