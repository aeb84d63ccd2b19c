/**
 * When to try again and when to renew: pure functions, so the pages' retry
 * and renewal behaviour is unit-tested (test/unit/pages-timing.test.ts).
 */

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

export interface Backoff {
  baseMs: number;
  capMs: number;
}

export const RECONNECT: Backoff = { baseMs: 500, capMs: 15_000 };

/**
 * Exponential backoff, capped, with "equal jitter": between half and all of
 * min(cap, base·2^attempt). Never zero (no tight loop), and a crowd that
 * lost its network together does not come back in lockstep.
 */
export function backoffDelay(attempt: number, policy: Backoff = RECONNECT, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
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
