import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

import { KittError, UsageError } from "@kitt/protocol/errors";

import { outputLine, runCommand as defaultRunner, type CommandRunner } from "./run-command.js";
import { servicePathFrom } from "./service-setup.js";
import { linkExists, notInstalled, unitDirFrom, unitPath, wantsLink, type ServiceState } from "./service-files.js";
import { renderUnit, UNIT_FILE, type UnitOptions } from "./systemd-unit.js";

export { DEFAULT_UNIT_DIR, linkExists, unitPath, wantsLink, type ServiceState } from "./service-files.js";

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
    unitDir: unitDirFrom(env),
    env,
    run,
    sudo: root && !onPath("sudo", env) ? [] : ["sudo"],
  };
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

/** What an operator can do after systemctl failed, judged from its message. */
function adviceFor(message: string): string {
  if (/not been booted with systemd|failed to connect to bus|systemd.*not running/i.test(message)) {
    return "this machine does not run systemd as PID 1: run the agent under your own supervisor with `kitt-agent start` (it stops cleanly on SIGTERM)";
  }
  return "fix the cause above and run kitt-agent service install again";
}

/** A step whose failure is noted and passed over (cleaning up, undoing). */
async function tryStep(deps: ServiceDeps, steps: ServiceStep[], step: string, args: string[], timeoutMs: number, detail: string): Promise<boolean> {
  try {
    await privileged(deps, args, timeoutMs);
    steps.push({ step, ok: true, detail });
    return true;
  } catch (err) {
    steps.push({ step, ok: false, detail: (err as Error).message });
    return false;
  }
}

/**
 * Undoes a failed install: disables what `enable` may have done, removes the
 * unit file, lets systemd forget it. Returns one phrase for the error.
 */
async function undoInstall(deps: ServiceDeps, target: string, enableTried: boolean, reloaded: boolean): Promise<string> {
  const ignored: ServiceStep[] = [];
  if (enableTried) await tryStep(deps, ignored, "disable", ["systemctl", "disable", "--now", UNIT_FILE], TIMEOUTS.enable, "");
  if (existsSync(target)) {
    try {
      await privileged(deps, ["rm", "-f", target], TIMEOUTS.copy);
    } catch (err) {
      return `could not remove ${target} again (${(err as Error).message}): remove it by hand`;
    }
  }
  if (reloaded) await tryStep(deps, ignored, "reload", ["systemctl", "daemon-reload"], TIMEOUTS.reload, "");
  return `removed ${target} again, nothing is installed`;
}

/** The `path` step: which PATH the unit carries and what was left out of this shell's. */
function pathStep(unit: UnitOptions, env: NodeJS.ProcessEnv): ServiceStep {
  const { dropped } = servicePathFrom(env.PATH);
  const left = dropped.length === 0 ? "" : `; left out: ${dropped.map((d) => (d === "" ? "(empty)" : d)).join(", ")}`;
  if (unit.path === undefined) return { step: "path", ok: true, detail: `this shell's PATH has no absolute entry: the service gets systemd's default PATH${left}` };
  return { step: "path", ok: true, detail: `Environment=PATH=${unit.path} (this shell's PATH, so the service finds what preflight found${left})` };
}

/**
 * Writes the unit, then `systemctl daemon-reload` and `enable [--now]`, all
 * through sudo. Refuses when a unit is already installed. All or nothing: when
 * a systemctl step fails the unit is disabled and removed again, and the error
 * says what to do.
 */
export async function installService(deps: ServiceDeps, unit: UnitOptions, options: { start: boolean }): Promise<ServiceStep[]> {
  const target = unitPath(deps);
  if (existsSync(target)) {
    throw new UsageError(`${target} is already installed (run kitt-agent service uninstall first)`);
  }
  const text = renderUnit(unit);
  const steps: ServiceStep[] = [pathStep(unit, deps.env)];
  const staging = await mkdtemp(join(tmpdir(), "kitt-agent-unit-"));
  try {
    const source = join(staging, UNIT_FILE);
    await writeFile(source, text, { mode: 0o644 });
    await privileged(deps, ["install", "-m", "0644", source, target], TIMEOUTS.copy);
    steps.push({ step: "install", ok: true, detail: `wrote ${target}` });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  let reloaded = false;
  let enableTried = false;
  try {
    await privileged(deps, ["systemctl", "daemon-reload"], TIMEOUTS.reload);
    reloaded = true;
    steps.push({ step: "reload", ok: true, detail: "systemctl daemon-reload" });
    enableTried = true;
    await privileged(deps, ["systemctl", "enable", ...(options.start ? ["--now"] : []), UNIT_FILE], TIMEOUTS.enable);
    steps.push({ step: "enable", ok: true, detail: options.start ? "enabled and started" : "enabled (not started: --no-start)" });
  } catch (err) {
    const message = (err as Error).message;
    const undone = await undoInstall(deps, target, enableTried, reloaded);
    throw new KittError(`${message}; ${undone}; ${adviceFor(message)}`, { code: "SERVICE", cause: err });
  }
  return steps;
}

/** systemd's link for WantedBy=multi-user.target: what `enable` made, left dangling when the unit file went. */
/**
 * Stops and disables the service, removes the unit, reloads systemd. Works on
 * a half-installed service too (a unit never enabled, an enabled one whose
 * file is gone, no systemd at all): a systemctl step that fails is noted
 * (`ok: false`) and the files are removed anyway; only failing to remove them
 * is an error.
 */
export async function uninstallService(deps: ServiceDeps): Promise<ServiceStep[]> {
  const target = unitPath(deps);
  const link = wantsLink(deps);
  if (!existsSync(target) && !linkExists(link)) return [{ step: "check", ok: true, detail: `${target} is not installed: nothing to do` }];
  const steps: ServiceStep[] = [];
  if (!(await tryStep(deps, steps, "disable", ["systemctl", "disable", "--now", UNIT_FILE], TIMEOUTS.enable, "stopped and disabled"))) {
    await tryStep(deps, steps, "stop", ["systemctl", "stop", UNIT_FILE], TIMEOUTS.enable, "stopped");
  }
  if (linkExists(link)) {
    await privileged(deps, ["rm", "-f", link], TIMEOUTS.copy);
    steps.push({ step: "unlink", ok: true, detail: `removed ${link}` });
  }
  if (existsSync(target)) {
    await privileged(deps, ["rm", "-f", target], TIMEOUTS.copy);
    steps.push({ step: "remove", ok: true, detail: `removed ${target}` });
  }
  await tryStep(deps, steps, "reload", ["systemctl", "daemon-reload"], TIMEOUTS.reload, "systemctl daemon-reload");
  return steps;
}

/** What systemd says about the unit (no sudo needed); never an empty field. */
export async function serviceState(deps: ServiceDeps): Promise<ServiceState> {
  const target = unitPath(deps);
  const link = wantsLink(deps);
  const installed = existsSync(target);
  if (!installed && !linkExists(link)) return notInstalled(deps);
  // is-active/is-enabled answer with a word and a non-zero code for "no": the word is what counts.
  const ask = async (verb: string): Promise<string> => {
    try {
      const r = await deps.run("systemctl", [verb, UNIT_FILE], { timeoutMs: TIMEOUTS.query, env: deps.env });
      const word = r.stdout.trim().split("\n")[0]?.trim() ?? "";
      if (word !== "") return word;
      const why = outputLine(r);
      return `unknown (${why === "" ? `systemctl ${verb} exited ${r.code} without an answer` : why})`;
    } catch (err) {
      return `unknown (${(err as Error).message})`;
    }
  };
  const [active, enabled] = await Promise.all([ask("is-active"), ask("is-enabled")]);
  const state: ServiceState = { installed, unitPath: target, active, enabled };
  if (!installed) state.problem = `half-installed: ${link} is left but ${target} is gone; clean up with kitt-agent service uninstall`;
  return state;
}

/** `sudo systemctl restart kitt-agent.service`. */
export async function restartService(deps: ServiceDeps): Promise<void> {
  await privileged(deps, ["systemctl", "restart", UNIT_FILE], TIMEOUTS.enable);
}
