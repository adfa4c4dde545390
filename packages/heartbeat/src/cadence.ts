import { type BackoffPolicy, backoffDelay, clampInterval } from "@kitt/protocol";

export const DEFAULT_INTERVAL_S = 30;
export const DEFAULT_RUNNING_MIN_INTERVAL_S = 60;
export const DEFAULT_JITTER_RATIO = 0.1;
export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({ baseMs: 2_000, maxMs: 300_000 });

/**
 * The wait before the next heartbeat after a success. Jitter is only ever
 * added, never taken away, so that the floors (10 s, 60 s while a job runs)
 * hold for every single wait and a fleet still drifts apart.
 */
export function intervalDelayMs(
  intervalS: number,
  opts: { running: boolean; runningMinS: number; jitterRatio: number; random: () => number },
): number {
  const base = clampInterval(intervalS);
  const effective = opts.running ? Math.max(base, opts.runningMinS) : base;
  const ms = effective * 1000;
  return Math.round(ms + unit(opts.random) * ms * opts.jitterRatio);
}

/** The wait after the nth consecutive failure (1-based): exponential, capped, jittered. */
export function failureDelayMs(consecutiveFailures: number, policy: BackoffPolicy, random: () => number): number {
  return backoffDelay(Math.max(0, consecutiveFailures - 1), policy, random);
}

/**
 * While the token is refused nothing will change until an operator acts, so
 * the loop polls at the cap (jittered down by up to jitterRatio) instead of
 * climbing the ladder again.
 */
export function unauthorizedDelayMs(policy: BackoffPolicy, jitterRatio: number, random: () => number): number {
  return Math.round(policy.maxMs * (1 - unit(random) * jitterRatio));
}

/** A misbehaving random source must not produce negative or huge waits. */
function unit(random: () => number): number {
  const r = random();
  return Number.isFinite(r) ? Math.min(1, Math.max(0, r)) : 0;
}
