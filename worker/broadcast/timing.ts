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

/**
 * A relay's count reaches the broadcast at most this often, its last socket's departure at once
 * (relay/stats-relay.ts). The broadcast pushes to the relays that told it they have sockets, so the
 * first socket is told soon: at a random moment within `RELAY_FIRST_REPORT_WITHIN_MS` (an announced
 * crowd opens sockets on hundreds of relays in one second; their reports come spread over a few).
 * A subscriber has the stats when it subscribes, and every update from that report on.
 */
export const RELAY_REPORT_MS = 10_000;
export const RELAY_FIRST_REPORT_WITHIN_MS = 5_000;

/** Updates (RPCs) the object sends to relays and shards a second at most (channels.ts). */
export const MAX_PUSHES_PER_SECOND = 100;

/**
 * Relays new stats sockets spread over at least (fewer only when SOCKETS_PER_BROADCAST allows fewer):
 * a crowd's pages open their sockets before any count of them reaches the table, and a relay should
 * take a few hundred new sockets a second at most. 32 take 16,000 a second (a million viewers in a
 * minute, half of them with a stats socket, is 8,000). A relay costs nothing until a socket comes,
 * and only the relays that have sockets are pushed to.
 */
export const STATS_RELAYS_AT_LEAST = 32;

/**
 * How many relays new stats sockets spread over. A viewer page opens about one stats socket, so the
 * audience bounds what a crowd can bring: the viewers in, and those the shards' join rate says will
 * be in within `leadSeconds` (the count reaches the table seconds after the sockets do). The sockets
 * the relays report count twice (headroom for pages that are not viewers). New relays cost nothing
 * until used.
 */
/**
 * The relays a new stats socket tries, in order: distinct random ones of the spread, those reported
 * full left out while any other is left (a relay's count is up to ten seconds old, so a full one may
 * still be picked: the next is another random one, not its neighbour, which a crowd fills as fast).
 */
export function relaysToTry(spread: number, full: readonly number[], tries: number, random = Math.random): number[] {
  const fullSet = new Set(full);
  let open = Array.from({ length: spread }, (_, i) => i).filter((i) => !fullSet.has(i));
  if (open.length === 0) open = Array.from({ length: spread }, (_, i) => i);
  const picked: number[] = [];
  while (picked.length < tries && open.length > 0) picked.push(...open.splice(Math.floor(random() * open.length), 1));
  return picked;
}

export function relaysFor(
  load: { sockets: number; viewers: number; joinRate: number; leadSeconds: number },
  perRelay: number,
  maxRelays: number,
): number {
  const expected = Math.max(2 * load.sockets, load.viewers + load.joinRate * load.leadSeconds);
  return Math.min(maxRelays, Math.max(STATS_RELAYS_AT_LEAST, Math.ceil(expected / perRelay)));
}
