import type { Logger, ServerCommand } from "@kitt/protocol";

import type { CommandStore } from "./command-store.js";
import type { CommandHandler } from "./types.js";

export type DispatchOutcome = "dispatched" | "duplicate";

function describe(command: ServerCommand): string {
  return `command ${command.command_id ?? "(no id)"} (${command.type ?? "no type"}${command.test_id ? `, test ${command.test_id}` : ""})`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Hands one command to the dispatcher unless its id was seen before.
 *
 * The id is written to the ledger *before* the dispatcher runs: a command
 * started twice (two benchmarks fighting over the GPUs, two result reports)
 * is worse than the microseconds-wide window in which a crash could lose one.
 * If the ledger cannot be written the command is still dispatched, since the
 * server will never send it again.
 *
 * Whatever the dispatcher does (throw, reject) the command stays accepted:
 * the dispatcher owns reporting its fate to the server.
 */
export async function dispatchOnce(
  command: ServerCommand,
  store: CommandStore,
  handler: CommandHandler,
  logger: Logger,
): Promise<DispatchOutcome> {
  const id = command.command_id;
  if (id !== undefined) {
    if (store.has(id)) {
      logger.warn(`${describe(command)} was delivered again; it was already dispatched, ignoring it`);
      return "duplicate";
    }
    try {
      await store.add(id);
    } catch (err) {
      logger.error(`${describe(command)}: could not record it as dispatched (${message(err)}); dispatching anyway`);
    }
  }
  const onError = (err: unknown) =>
    logger.error(`dispatcher failed on ${describe(command)}: ${message(err)}; the command stays accepted`);
  try {
    const result = handler(command);
    if (result !== undefined && typeof (result as Promise<void>).then === "function") {
      (result as Promise<void>).then(undefined, onError);
    }
  } catch (err) {
    onError(err);
  }
  return "dispatched";
}
