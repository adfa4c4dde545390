import { EngineError } from "./errors.js";
import { describeStep, type RunStep } from "./run-step.js";

export interface SystemdContext {
  unit: string;
  systemctl: string;
  timeoutMs: number;
  env: NodeJS.ProcessEnv;
  run: RunStep;
}

/** `systemctl is-active <unit>` says `active`; no systemctl, or any failure, means no. */
export async function systemdUnitActive(ctx: SystemdContext): Promise<boolean> {
  const result = await ctx.run(ctx.systemctl, ["is-active", ctx.unit], { timeoutMs: ctx.timeoutMs, env: ctx.env });
  return result.output.trim().split("\n")[0] === "active";
}

/** The unit's MainPID, 0 when unknown. */
export async function systemdMainPid(ctx: SystemdContext): Promise<number> {
  const result = await ctx.run(ctx.systemctl, ["show", "--property=MainPID", ctx.unit], { timeoutMs: ctx.timeoutMs, env: ctx.env });
  const match = /^MainPID=(\d+)$/m.exec(result.output);
  return match?.[1] === undefined ? 0 : Number(match[1]);
}

export async function systemdStop(ctx: SystemdContext): Promise<void> {
  const args = ["stop", ctx.unit];
  const timeoutMs = Math.max(ctx.timeoutMs, 30_000);
  const result = await ctx.run(ctx.systemctl, args, { timeoutMs, env: ctx.env });
  if (result.code !== 0) throw new EngineError("ENGINE_STOP_FAILED", describeStep(ctx.systemctl, args, result, timeoutMs));
}
