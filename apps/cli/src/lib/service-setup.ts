import { homedir, userInfo } from "node:os";
import { delimiter, resolve } from "node:path";

import type { CliConfig } from "./config.js";
import type { UnitOptions } from "./systemd-unit.js";

export interface ServicePath {
  /** The PATH for the unit: absolute entries of the caller's PATH, first occurrence of each; "" when none is left. */
  path: string;
  /** Entries left out: empty, relative (`.`, `bin`), duplicates, with a line break (systemd could not take them). */
  dropped: string[];
}

/**
 * The PATH the service gets: the one `service install` ran with, so that
 * what preflight found from this shell (the benchmark CLI, docker,
 * nvidia-smi, mount) is found under systemd too. Relative entries would be
 * resolved against the service's working directory (/), so they go.
 */
export function servicePathFrom(path: string | undefined): ServicePath {
  const kept: string[] = [];
  const dropped: string[] = [];
  for (const entry of (path ?? "").split(delimiter)) {
    if (entry.startsWith("/") && !/[\n\r\0]/.test(entry) && !kept.includes(entry)) kept.push(entry);
    else dropped.push(entry);
  }
  return { path: kept.join(delimiter), dropped };
}

/**
 * The unit for this installation: this Node binary, the CLI entry that was
 * invoked (an update's "current" link stays valid), this user and config,
 * and this shell's PATH.
 */
export function unitOptionsFor(
  loaded: CliConfig,
  entry: string | undefined = process.argv[1],
  env: NodeJS.ProcessEnv = process.env,
): UnitOptions {
  if (entry === undefined) throw new Error("cannot tell the CLI entry point (process.argv[1] is empty)");
  const { path } = servicePathFrom(env.PATH);
  return {
    user: userInfo().username,
    home: homedir(),
    nodePath: process.execPath,
    cliEntry: resolve(entry),
    configPath: resolve(loaded.path),
    // The daemon's cancel grace, then time to report the outcome to the server.
    stopTimeoutS: loaded.config.cancel_grace_s + 30,
    ...(path !== "" ? { path } : {}),
  };
}
