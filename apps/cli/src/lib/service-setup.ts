import { homedir, userInfo } from "node:os";
import { resolve } from "node:path";

import type { CliConfig } from "./config.js";
import type { UnitOptions } from "./systemd-unit.js";

/**
 * The unit for this installation: this Node binary, the CLI entry that was
 * invoked (an update's "current" link stays valid), this user and config.
 */
export function unitOptionsFor(loaded: CliConfig, entry: string | undefined = process.argv[1]): UnitOptions {
  if (entry === undefined) throw new Error("cannot tell the CLI entry point (process.argv[1] is empty)");
  return {
    user: userInfo().username,
    home: homedir(),
    nodePath: process.execPath,
    cliEntry: resolve(entry),
    configPath: resolve(loaded.path),
    // The daemon's cancel grace, then time to report the outcome to the server.
    stopTimeoutS: loaded.config.cancel_grace_s + 30,
  };
}
