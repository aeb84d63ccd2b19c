/**
 * The Broadcast object's clocks and budgets, shared by the object and the scale simulation
 * (bench/scale.ts). Plain values: nothing here needs the Workers runtime.
 */

/** The alarm's period while live: the policy runs at least this often (and at once on an urgent load report). */
export const TICK_MS = 5_000;

/** A shard's join rate not refreshed this recently is over. */
export const RATE_FRESH_MS = 5_000;

/** The stats are pushed at most this often. */
export const STATS_PUSH_MS = 250;

/** Updates (RPCs) the object sends to relays and shards a second at most (channels.ts). */
export const MAX_PUSHES_PER_SECOND = 100;

/**
 * How many relays new stats sockets spread over. A viewer page opens about one stats socket, so the
 * audience bounds what a crowd can bring: the viewers in, and those the shards' join rate says will
 * be in within `leadSeconds` (the count reaches the table seconds after the sockets do). The sockets
 * the relays report count twice (headroom for pages that are not viewers). New relays cost nothing
 * until used.
 */
export function relaysFor(
  load: { sockets: number; viewers: number; joinRate: number; leadSeconds: number },
  perRelay: number,
  maxRelays: number,
): number {
  const expected = Math.max(2 * load.sockets, load.viewers + load.joinRate * load.leadSeconds);
  return Math.min(maxRelays, Math.max(1, Math.ceil(expected / perRelay)));
}
