import { tmpdir } from "node:os";

import type { BuiltKittImage } from "@kitt/containers";
import type { AgentConfig } from "@kitt/protocol";
import { UsageError } from "@kitt/protocol";

import { loadCliConfig } from "./config.js";
import { loadOptionalConfig } from "./optional-config.js";
import { clientFor } from "./server-client.js";

export interface BuildFromServerOptions {
  /** agent.yaml (--config / KITT_AGENT_CONFIG). */
  configPath: string | undefined;
  /** --server: replaces server_url; agent.yaml is then optional. */
  server?: string | undefined;
  tag?: string | undefined;
  noCache?: boolean;
  onProgress: (line: string) => void;
  signal?: AbortSignal;
  /** Where DOCKER_HOST is read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Where the download and the unpacked context go while building (default the OS temp dir). */
  workDir?: string;
}

/** agent.yaml with --server applied; without --server the file must exist and name a server. */
async function configFor(options: BuildFromServerOptions): Promise<AgentConfig> {
  if (options.server === undefined) return (await loadCliConfig(options.configPath)).config;
  const server = options.server.trim();
  if (server === "") throw new UsageError("--server must not be empty");
  const { defaultConfig } = await import("@kitt/protocol");
  const config = (await loadOptionalConfig(options.configPath)) ?? defaultConfig();
  return { ...config, server_url: server };
}

/**
 * `kitt-agent build`: the server client from agent.yaml (token, mTLS,
 * `--server` override), the local Docker engine, and buildKittImage().
 */
export async function buildFromServer(options: BuildFromServerOptions): Promise<BuiltKittImage> {
  const config = await configFor(options);
  const { DockerRuntime, buildKittImage } = await import("@kitt/containers");
  const runtime = new DockerRuntime({ env: options.env ?? process.env });
  const client = await clientFor(config, { timeoutMs: 600_000 });
  try {
    return await buildKittImage({
      client,
      runtime,
      workDir: options.workDir ?? tmpdir(),
      tag: options.tag,
      kittImage: config.kitt_image,
      noCache: options.noCache === true,
      onProgress: options.onProgress,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
  } finally {
    client.close();
    runtime.close();
  }
}
