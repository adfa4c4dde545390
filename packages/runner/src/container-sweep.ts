import type { ContainerRuntime } from "@kitt/containers";
import { silentLogger, type Logger } from "@kitt/protocol";

import { LABEL_AGENT, LABEL_COMMAND, LABEL_TEST } from "./container-executor.js";
import { errorText } from "./job.js";

export interface SweptContainer {
  id: string;
  name: string;
  commandId: string | undefined;
  testId: string | undefined;
  state: string;
}

/**
 * At start, before any job runs: every container labelled as this agent's
 * is a leftover of a previous run that died without cleaning up (SIGKILL,
 * power cut). Each is stopped and removed, so no benchmark of a dead agent
 * keeps the GPU; their jobs are reported failed by the job journal. Returns
 * what was removed; a container that cannot be removed is logged and left.
 */
export async function sweepContainers(runtime: ContainerRuntime, agentLabel: string, logger: Logger = silentLogger): Promise<SweptContainer[]> {
  const leftovers = await runtime.listContainers({ [LABEL_AGENT]: agentLabel });
  const swept: SweptContainer[] = [];
  await Promise.all(
    leftovers.map(async (c) => {
      const commandId = c.labels[LABEL_COMMAND];
      const testId = c.labels[LABEL_TEST];
      logger.warn(`removing container ${c.name} (${c.state}) left by a previous run of the agent (command ${commandId ?? "?"}, test ${testId ?? "?"})`);
      try {
        await runtime.removeContainer(c.id, { force: true });
        swept.push({ id: c.id, name: c.name, commandId, testId, state: c.state });
      } catch (err) {
        logger.error(`could not remove container ${c.name}: ${errorText(err)}`);
      }
    }),
  );
  return swept;
}
