import { lstatSync } from "node:fs";
import { join } from "node:path";

import { UNIT_FILE } from "./systemd-unit.js";

/**
 * Where the service's files are, and whether any is there: what `status`
 * needs to say "not installed" without loading the service commands (and
 * child_process with them).
 */

export const DEFAULT_UNIT_DIR = "/etc/systemd/system";

/** KITT_AGENT_UNIT_DIR, else /etc/systemd/system. */
export function unitDirFrom(env: NodeJS.ProcessEnv): string {
  return env.KITT_AGENT_UNIT_DIR ?? DEFAULT_UNIT_DIR;
}

export function unitPath(deps: { unitDir: string }): string {
  return join(deps.unitDir, UNIT_FILE);
}

/** The link `systemctl enable` makes. */
export function wantsLink(deps: { unitDir: string }): string {
  return join(deps.unitDir, "multi-user.target.wants", UNIT_FILE);
}

/** The path exists as anything, a dangling link included. */
export function linkExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export interface ServiceState {
  /** The unit file exists. */
  installed: boolean;
  unitPath: string;
  /** `systemctl is-active`: active, inactive, failed, activating...; "not installed", or "unknown (why)" when systemctl gives no answer. */
  active: string;
  /** `systemctl is-enabled`: enabled, disabled...; "not installed", or "unknown (why)". */
  enabled: string;
  /** A half-installed service, and what to do about it. */
  problem?: string;
}

export function notInstalled(deps: { unitDir: string }): ServiceState {
  return { installed: false, unitPath: unitPath(deps), active: "not installed", enabled: "not installed" };
}

/** Neither the unit file nor the enable link is there (not even as a dangling link). */
export function nothingInstalled(deps: { unitDir: string }): boolean {
  return !linkExists(unitPath(deps)) && !linkExists(wantsLink(deps));
}
