import type { Logger, ServerCommand } from "@kitt/protocol";

import type { CommandStore } from "./command-store.js";
import type { CommandHandler } from "./types.js";

function describe(command: ServerCommand): string {
  return `command ${command.command_id ?? "(no id)"} (${command.type ?? "no type"}${command.test_id ? `, test ${command.test_id}` : ""})`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Hands every new command of one heartbeat response to the dispatcher:
 * duplicates (seen before, or twice in this response) are skipped, the new
 * ids are recorded with ONE durable write, then each command is dispatched
 * in order, and the promises the dispatcher returns (e.g. "the job is on
 * disk") are awaited together, so that their durable writes can share one
 * fsync. Returns how many were dispatched and how many were duplicates.
 *
 * The ids are written to the ledger *before* the dispatcher runs: a command
 * started twice (two benchmarks fighting over the GPUs, two result reports)
 * is worse than the short window in which a crash could lose one (the
 * runner's own journal then still has it once the dispatcher's promise has
 * resolved). If the ledger cannot be written the commands are still
 * dispatched, since the server will never send them again. Whatever the
 * dispatcher does (throw, reject) a command stays accepted: the dispatcher
 * owns reporting its fate to the server.
 */
export async function dispatchAll(
  commands: readonly ServerCommand[],
  store: CommandStore,
  handler: CommandHandler,
  logger: Logger,
): Promise<{ dispatched: number; duplicates: number }> {
  const fresh: ServerCommand[] = [];
  const ids = new Set<string>();
  let duplicates = 0;
  for (const command of commands) {
    const id = command.command_id;
    if (id !== undefined && (store.has(id) || ids.has(id))) {
      logger.warn(`${describe(command)} was delivered again; it was already dispatched, ignoring it`);
      duplicates++;
      continue;
    }
    if (id !== undefined) ids.add(id);
    fresh.push(command);
  }
  if (ids.size > 0) {
    try {
      await store.addMany([...ids]);
    } catch (err) {
      logger.error(`could not record ${ids.size} command(s) as dispatched (${message(err)}); dispatching anyway`);
    }
  }
  const pending: Promise<void>[] = [];
  for (const command of fresh) {
    const onError = (err: unknown) => logger.error(`dispatcher failed on ${describe(command)}: ${message(err)}; the command stays accepted`);
    try {
      const result = handler(command);
      if (result !== undefined && typeof (result as Promise<void>).then === "function") pending.push((result as Promise<void>).then(undefined, onError));
    } catch (err) {
      onError(err);
    }
  }
  await Promise.all(pending);
  return { dispatched: fresh.length, duplicates };
}
