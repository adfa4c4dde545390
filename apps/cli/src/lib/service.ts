import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

import { KittError, UsageError } from "@kitt/protocol";

import { outputLine, runCommand as defaultRunner, type CommandRunner } from "./run-command.js";
import { renderUnit, UNIT_FILE, type UnitOptions } from "./systemd-unit.js";

export const DEFAULT_UNIT_DIR = "/etc/systemd/system";

export interface ServiceDeps {
  /** Where unit files go; KITT_AGENT_UNIT_DIR overrides the default. */
  unitDir: string;
  env: NodeJS.ProcessEnv;
  run: CommandRunner;
  /** True when running as root without sudo installed: then commands run directly. */
  sudo: string[];
}

export interface ServiceStep {
  step: string;
  ok: boolean;
  detail: string;
}

const TIMEOUTS = { copy: 120_000, reload: 60_000, enable: 120_000, query: 10_000 };

function onPath(name: string, env: NodeJS.ProcessEnv): boolean {
  return (env.PATH ?? "").split(delimiter).some((dir) => dir !== "" && existsSync(join(dir, name)));
}

export function serviceDeps(env: NodeJS.ProcessEnv = process.env, run: CommandRunner = defaultRunner): ServiceDeps {
  const root = process.getuid?.() === 0;
  return {
    unitDir: env.KITT_AGENT_UNIT_DIR ?? DEFAULT_UNIT_DIR,
    env,
    run,
    sudo: root && !onPath("sudo", env) ? [] : ["sudo"],
  };
}

export function unitPath(deps: Pick<ServiceDeps, "unitDir">): string {
  return join(deps.unitDir, UNIT_FILE);
}

/** Runs one privileged step; a failure ends the sequence with a one-line error naming the command. */
async function privileged(deps: ServiceDeps, args: string[], timeoutMs: number): Promise<string> {
  const [command, ...rest] = [...deps.sudo, ...args] as [string, ...string[]];
  const result = await deps.run(command, rest, { timeoutMs, env: deps.env, interactive: deps.sudo.length > 0 });
  if (result.code !== 0) {
    const why = outputLine(result);
    throw new KittError(`${[command, ...rest].join(" ")} failed (exit ${result.code})${why === "" ? "" : `: ${why}`}`, { code: "SERVICE" });
  }
  return result.stdout.trim();
}

/**
 * Writes the unit, then `systemctl daemon-reload` and `enable [--now]`, all
 * through sudo. Refuses when a unit is already installed.
 */
export async function installService(deps: ServiceDeps, unit: UnitOptions, options: { start: boolean }): Promise<ServiceStep[]> {
  const target = unitPath(deps);
  if (existsSync(target)) {
    throw new UsageError(`${target} is already installed (run kitt-agent service uninstall first)`);
  }
  const text = renderUnit(unit);
  const steps: ServiceStep[] = [];
  const staging = await mkdtemp(join(tmpdir(), "kitt-agent-unit-"));
  try {
    const source = join(staging, UNIT_FILE);
    await writeFile(source, text, { mode: 0o644 });
    await privileged(deps, ["install", "-m", "0644", source, target], TIMEOUTS.copy);
    steps.push({ step: "install", ok: true, detail: `wrote ${target}` });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  await privileged(deps, ["systemctl", "daemon-reload"], TIMEOUTS.reload);
  steps.push({ step: "reload", ok: true, detail: "systemctl daemon-reload" });
  await privileged(deps, ["systemctl", "enable", ...(options.start ? ["--now"] : []), UNIT_FILE], TIMEOUTS.enable);
  steps.push({ step: "enable", ok: true, detail: options.start ? "enabled and started" : "enabled (not started: --no-start)" });
  return steps;
}

/** Stops and disables the service, removes the unit, reloads systemd. */
export async function uninstallService(deps: ServiceDeps): Promise<ServiceStep[]> {
  const target = unitPath(deps);
  if (!existsSync(target)) return [{ step: "check", ok: true, detail: `${target} is not installed: nothing to do` }];
  const steps: ServiceStep[] = [];
  await privileged(deps, ["systemctl", "disable", "--now", UNIT_FILE], TIMEOUTS.enable);
  steps.push({ step: "disable", ok: true, detail: "stopped and disabled" });
  await privileged(deps, ["rm", "-f", target], TIMEOUTS.copy);
  steps.push({ step: "remove", ok: true, detail: `removed ${target}` });
  await privileged(deps, ["systemctl", "daemon-reload"], TIMEOUTS.reload);
  steps.push({ step: "reload", ok: true, detail: "systemctl daemon-reload" });
  return steps;
}

export interface ServiceState {
  installed: boolean;
  unitPath: string;
  /** `systemctl is-active`: active, inactive, failed, activating...; "" when not installed. */
  active: string;
  /** `systemctl is-enabled`: enabled, disabled...; "" when not installed. */
  enabled: string;
}

/** What systemd says about the unit (no sudo needed). */
export async function serviceState(deps: ServiceDeps): Promise<ServiceState> {
  const target = unitPath(deps);
  if (!existsSync(target)) return { installed: false, unitPath: target, active: "", enabled: "" };
  // is-active/is-enabled answer with a word and a non-zero code for "no": the word is what counts.
  const ask = async (verb: string): Promise<string> => {
    try {
      const r = await deps.run("systemctl", [verb, UNIT_FILE], { timeoutMs: TIMEOUTS.query, env: deps.env });
      return r.stdout.trim().split("\n")[0] ?? "";
    } catch (err) {
      return `unknown (${(err as Error).message})`;
    }
  };
  const [active, enabled] = await Promise.all([ask("is-active"), ask("is-enabled")]);
  return { installed: true, unitPath: target, active, enabled };
}

/** `sudo systemctl restart kitt-agent.service`. */
export async function restartService(deps: ServiceDeps): Promise<void> {
  await privileged(deps, ["systemctl", "restart", UNIT_FILE], TIMEOUTS.enable);
}
