import type { AgentConfig } from "@kitt/protocol";

import { loadCliConfig } from "./config.js";

/**
 * agent.yaml when there is one: commands such as preflight and hardware work
 * before init, but an existing file that is broken is still an error.
 */
export async function loadOptionalConfig(path: string | undefined): Promise<AgentConfig | undefined> {
  try {
    return (await loadCliConfig(path, { requireServer: false })).config;
  } catch (err) {
    const e = err as { code?: string; cause?: { code?: string } };
    if (e.code === "CONFIG" && e.cause?.code === "ENOENT") return undefined;
    throw err;
  }
}
