import type { AgentConfig } from "@kitt/protocol";

export interface CliConfig {
  config: AgentConfig;
  path: string;
  warnings: string[];
}

/** agent.yaml (path, KITT_AGENT_CONFIG, or ~/.kitt/agent.yaml) with env overrides. */
export async function loadCliConfig(path: string | undefined, options: { requireServer?: boolean } = {}): Promise<CliConfig> {
  const { loadAgentConfig } = await import("@kitt/protocol/config");
  return loadAgentConfig({ ...(path === undefined ? {} : { path }), requireServer: options.requireServer ?? true });
}

/** `abcdefghijkl` -> `abcd********`: enough to recognise a token, not to use it. */
export function maskToken(token: string): string {
  if (token === "") return "(none)";
  if (token.length <= 8) return "*".repeat(token.length);
  return `${token.slice(0, 4)}${"*".repeat(Math.min(token.length - 4, 12))}`;
}
