import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";

import { findExecutable } from "@kitt/protocol";

import { servicePathFrom } from "./service-setup.js";
import { SYSTEMD_DEFAULT_PATH, unitEnvironment } from "./systemd-unit.js";

/** The PATH the service runs with, and where that comes from (for the message). */
export async function servicePathOf(unitFile: string, env: NodeJS.ProcessEnv): Promise<{ path: string; source: string }> {
  if (existsSync(unitFile)) {
    const path = unitEnvironment(await readFile(unitFile, "utf8"), "PATH");
    return path === undefined ? { path: SYSTEMD_DEFAULT_PATH, source: `systemd's default: ${unitFile} sets no PATH` } : { path, source: `set in ${unitFile}` };
  }
  return { path: servicePathFrom(env.PATH).path, source: "the one kitt-agent service install would write from this shell" };
}

/**
 * Why the service (working directory /, the PATH of servicePathOf) would not
 * find `command` although it is not an absolute path; undefined when it
 * would, or when the command is absolute (then PATH plays no part).
 */
export async function servicePathProblem(command: string, unitFile: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (command.startsWith("/")) return undefined;
  const here = await findExecutable(command, env);
  const fix = here !== undefined ? `set benchmark_command to ${here}` : "set benchmark_command to an absolute path";
  if (command.includes("/")) return `benchmark_command ${JSON.stringify(command)} is relative and the service runs in /: ${fix}`;
  const service = await servicePathOf(unitFile, env);
  if ((await findExecutable(command, { PATH: service.path }, "/")) !== undefined) return undefined;
  return `the service would not find ${command} on its PATH (${service.source}: ${service.path === "" ? "(empty)" : service.path}): ${fix}${existsSync(unitFile) ? ", or reinstall the service from a shell whose PATH has it" : ""}`;
}
