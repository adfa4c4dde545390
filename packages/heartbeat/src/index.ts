export { HeartbeatLoop } from "./heartbeat-loop.js";
export type {
  CommandHandler,
  HeartbeatClient,
  HeartbeatHealth,
  HeartbeatLoopOptions,
  HeartbeatState,
  SettingsHandler,
  SleepFn,
  StatusSnapshot,
} from "./types.js";
export {
  COMMAND_LEDGER_FILE,
  DEFAULT_LEDGER_LIMIT,
  FileCommandStore,
  MemoryCommandStore,
  type CommandStore,
} from "./command-store.js";
export {
  DEFAULT_BACKOFF,
  DEFAULT_INTERVAL_S,
  DEFAULT_JITTER_RATIO,
  DEFAULT_RUNNING_MIN_INTERVAL_S,
  failureDelayMs,
  intervalDelayMs,
  unauthorizedDelayMs,
} from "./cadence.js";
export { buildHeartbeatBody } from "./payload.js";
