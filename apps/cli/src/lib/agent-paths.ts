import { homedir } from "node:os";
import { join } from "node:path";

import { loadOptionalConfig } from "./optional-config.js";

/** <state_dir>/agent.pid from agent.yaml, or ~/.kitt/agent.pid without one. */
export async function pidFileFor(configPath: string | undefined): Promise<string> {
  const config = await loadOptionalConfig(configPath);
  return join(config?.state_dir ?? join(homedir(), ".kitt"), "agent.pid");
}
