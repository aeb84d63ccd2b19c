/**
 * When to try again and when to renew: pure functions, so the pages' retry
 * and renewal behaviour is unit-tested (test/unit/pages-timing.test.ts).
 */

import { backoffDelay as delayFor, type Backoff } from "#protocol/backoff.ts";

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** The pages reconnect with equal jitter: never a tight loop, and a crowd that lost its network together spreads out. */
export const RECONNECT: Backoff = { baseMs: 500, capMs: 15_000, jitter: "equal" };

export type { Backoff };

/** The shared backoff with the pages' defaults: RECONNECT, or another policy laid over it. */
export function backoffDelay(attempt: number, policy: Partial<Backoff> = RECONNECT, random = Math.random): number {
  return delayFor(attempt, { ...RECONNECT, ...policy }, random);
}

/** The most before expiry a token is renewed; short tokens renew at 80 % of their life. */
export const RENEW_MARGIN_MS = 5 * 60_000;

/**
 * How long from `now` until a token (issued at `issuedAtMs`, expiring at
 * `expiresAtMs`) should be renewed: five minutes before it expires, or at
 * 80 % of its life if that is sooner; at once if that moment has passed.
 */
export function renewalDelay(issuedAtMs: number, expiresAtMs: number, now: number): number {
  const lifetime = Math.max(0, expiresAtMs - issuedAtMs);
  const renewAt = expiresAtMs - Math.min(RENEW_MARGIN_MS, lifetime * 0.2);
  return Math.max(0, renewAt - now);
}
