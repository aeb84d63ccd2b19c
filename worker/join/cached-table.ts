import type { RoutingTable } from "../broadcast/contract.ts";
import { COMING_RETRY_MS, COMING_TRIES, RoutingCache, type SharedTables } from "./routing-cache.ts";

/**
 * The Worker's routing tables: this isolate's RoutingCache over its location's Cache API
 * (routing-cache.ts says why). Where the Cache API does nothing (`*.workers.dev`, which Cloudflare
 * does not cache for, or a runtime without it) the isolate's own copy is all there is.
 */

/** Part of the key: bumped when RoutingTable's shape changes, so that a rollout never reads the other version's tables. */
const TABLE_FORMAT = 3;
const READ_AT = "x-fanout-read-at";
/** How long the location keeps a table it no longer takes as fresh, to serve while it is read again. */
const KEEP_SECONDS = 60;

/** The location's tables in the Cache API (`caches` is absent in some runtimes: then none). */
export function cacheApiTables(): SharedTables | undefined {
  if (typeof caches === "undefined") return undefined;
  const key = (id: string) => `https://routing.fanout.internal/v${TABLE_FORMAT}/${encodeURIComponent(id)}`;
  // Opened at each use: a cache object is not carried from one request to the next.
  const cache = () => caches.open("fanout:routing");
  return {
    async get(broadcastId) {
      const response = await (await cache()).match(key(broadcastId));
      if (!response) return undefined;
      const at = Number(response.headers.get(READ_AT));
      return Number.isFinite(at) ? { at, table: await response.json<RoutingTable>() } : undefined;
    },
    async put(broadcastId, at, table) {
      const response = Response.json(table, {
        // Kept well past its freshness (its read time decides that): the table served while one isolate refreshes it.
        headers: { "cache-control": `max-age=${KEEP_SECONDS}`, [READ_AT]: String(at) },
      });
      await (await cache()).put(key(broadcastId), response);
    },
    async claim(broadcastId, now, forMs) {
      const lease = `${key(broadcastId)}/refresh`;
      const held = await (await cache()).match(lease);
      if (held && now - Number(held.headers.get(READ_AT)) < forMs) return false;
      const claim = new Response(null, {
        headers: { "cache-control": `max-age=${Math.ceil((2 * forMs) / 1000)}`, [READ_AT]: String(now) },
      });
      await (await cache()).put(lease, claim);
      return true;
    },
  };
}

/** This isolate's cache, over its location's. */
const isolateCache = new RoutingCache(cacheApiTables());

export async function cachedRoutingTable(env: Env, broadcastId: string, maxAgeMs?: number): Promise<RoutingTable> {
  const read = () => env.BROADCAST.getByName(broadcastId).routingTable();
  for (let tries = 0; tries < COMING_TRIES; tries++) {
    const table = await isolateCache.get(broadcastId, read, maxAgeMs);
    if (table) return table;
    // Another isolate here is reading it: it is in the location's cache in a round trip.
    await new Promise((resolve) => setTimeout(resolve, COMING_RETRY_MS));
  }
  return (await isolateCache.get(broadcastId, read, 0))!;
}

/** How many broadcasts this isolate holds a table for. */
export const cachedTables = (): number => isolateCache.size;

/** Once per location per `forMs` (RoutingCache.claim): `name` is the thing done, per broadcast. */
export const onceHere = (name: string, forMs: number): Promise<boolean> => isolateCache.claim(name, Date.now(), forMs);
