import { readFile } from "node:fs/promises";

import type { AgentConfig, KittServerClient, KittServerClientOptions } from "@kitt/protocol";
import { UsageError } from "@kitt/protocol";

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new UsageError(`cannot read TLS ${what} ${path}: ${code}`, { cause: err });
  }
}

/** The server client for agent.yaml: token, mTLS files read from their paths, `insecure`. */
export async function clientFor(
  config: AgentConfig,
  overrides: Partial<Pick<KittServerClientOptions, "retries" | "timeoutMs" | "insecure">> = {},
): Promise<KittServerClient> {
  const { KittServerClient: Client } = await import("@kitt/protocol");
  const tls: NonNullable<KittServerClientOptions["tls"]> = {};
  if (config.tls.ca !== undefined) tls.ca = await readPem(config.tls.ca, "CA certificate");
  if (config.tls.cert !== undefined) tls.cert = await readPem(config.tls.cert, "certificate");
  if (config.tls.key !== undefined) tls.key = await readPem(config.tls.key, "key");
  return new Client({
    serverUrl: config.server_url,
    token: config.token,
    tls,
    insecure: overrides.insecure ?? config.insecure,
    retries: overrides.retries ?? 1,
    timeoutMs: overrides.timeoutMs ?? 15_000,
    userAgent: "kitt-agent-cli",
  });
}
