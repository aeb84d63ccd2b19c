/**
 * How long to wait before retry `attempt` (0-based), for every retry loop in
 * Fanout: the IVS client, replication in the Broadcast object, the pages'
 * reconnects and renewals. Exponential, capped at `capMs`, with jitter so that
 * a crowd that failed together does not come back in lockstep:
 *
 * - `full`: anywhere in [0, ceiling): the widest spread (many isolates calling IVS);
 * - `equal`: between half and all of the ceiling: spread, but never a tight loop (browsers);
 * - `none`: the ceiling itself, for a schedule kept in storage and shown to operators.
 */

export interface Backoff {
  baseMs: number;
  capMs: number;
  jitter: "full" | "equal" | "none";
}

const DEFAULTS: Backoff = { baseMs: 100, capMs: 5_000, jitter: "full" };

export function backoffDelay(
  attempt: number,
  policy: Partial<Backoff> = {},
  random: () => number = Math.random,
): number {
  const { baseMs, capMs, jitter } = { ...DEFAULTS, ...policy };
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  switch (jitter) {
    case "full":
      return Math.floor(random() * ceiling);
    case "equal":
      return Math.round(ceiling / 2 + (random() * ceiling) / 2);
    case "none":
      return ceiling;
    default:
      return jitter satisfies never;
  }
}
