import { LRUCache } from "lru-cache";
import type { RoutingTable } from "../broadcast/contract.ts";

/**
 * The join path's copy of a broadcast's routing table (docs/design.md, "The join path"). Two
 * layers, so that a crowd costs the Broadcast object about one read per location a second,
 * not one per isolate (Cloudflare runs many isolates per location during a big event, and
 * hundreds of locations: a thousand isolates reading once a second would be a thousand
 * requests a second on the one object that must create stages at that very moment):
 *
 * - per isolate, in memory, for `maxAgeMs`: concurrent joins share one lookup;
 * - per location, in the Cache API (one cache per data centre), for `maxAgeMs` from the
 *   moment it was read from the object: the first isolate whose copy expires reads the object
 *   and stores the table; the others of that location take it from there.
 *
 * Each isolate's copy ages from when *it* looked (not from the object read), so the isolates
 * of a location do not all come back at the same instant; a table is then at most twice
 * `maxAgeMs` old, which the join path tolerates (a shard refuses a full or closed stage, and
 * the join reads afresh). Where the Cache API does nothing (local dev without it,
 * `*.workers.dev`, which Cloudflare does not cache for) every isolate reads the object
 * itself, as before. Admissions made in an isolate are counted into its copy, so that it
 * does not keep picking the stage it just filled.
 */

const MAX_AGE_MS = 1000;
/** Part of the key: bumped when RoutingTable's shape changes, so that a rollout never reads the other version's tables. */
const TABLE_FORMAT = 2;
const READ_AT = "x-fanout-read-at";

/** A store shared by the isolates of one location: the Cache API in a Worker, a map in the simulation. */
export interface SharedTables {
  get(broadcastId: string): Promise<{ at: number; table: RoutingTable } | undefined>;
  put(broadcastId: string, at: number, table: RoutingTable, maxAgeMs: number): Promise<void>;
}

interface Entry {
  at: number;
  table: Promise<RoutingTable>;
}

export class RoutingCache {
  /** Bounded: the broadcasts this isolate serves now, not every id it was ever asked about. */
  readonly #entries = new LRUCache<string, Entry>({ max: 1_000 });
  readonly #shared: SharedTables | undefined;

  constructor(shared?: SharedTables) {
    this.#shared = shared;
  }

  /**
   * `maxAgeMs` is shorter for joins waiting on a new stage (and 0 for one that found its copy
   * out of date); they still share one lookup per isolate, never one each: a crowd of waiters
   * must not become a crowd of reads on the object busy creating their stage.
   */
  get(
    broadcastId: string,
    read: () => Promise<RoutingTable>,
    maxAgeMs = MAX_AGE_MS,
    now = Date.now(),
  ): Promise<RoutingTable> {
    const entry = this.#entries.get(broadcastId);
    if (entry && now - entry.at < maxAgeMs) return entry.table;
    const table = this.#lookUp(broadcastId, read, maxAgeMs, now);
    this.#entries.set(broadcastId, { at: now, table });
    // A failed read is not kept.
    table.catch(() => {
      if (this.#entries.get(broadcastId)?.table === table) this.#entries.delete(broadcastId);
    });
    return table;
  }

  async #lookUp(
    broadcastId: string,
    read: () => Promise<RoutingTable>,
    maxAgeMs: number,
    now: number,
  ): Promise<RoutingTable> {
    if (this.#shared && maxAgeMs > 0) {
      const shared = await this.#shared.get(broadcastId).catch(() => undefined);
      if (shared && now - shared.at < maxAgeMs) return shared.table;
    }
    const table = await read();
    // Best effort: a location that cannot store it reads again next time, as an isolate alone would.
    // Dated from the lookup (a little before the read): never younger than it is.
    await this.#shared?.put(broadcastId, now, table, MAX_AGE_MS).catch(() => undefined);
    return table;
  }

  /** How many broadcasts this isolate holds a table for (never more than the cache's bound). */
  get size(): number {
    return this.#entries.size;
  }
}

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
    async put(broadcastId, at, table, maxAgeMs) {
      const response = Response.json(table, {
        // Whole seconds only: the entry outlives its freshness a little, and its read time decides.
        headers: { "cache-control": `max-age=${Math.ceil((2 * maxAgeMs) / 1000)}`, [READ_AT]: String(at) },
      });
      await (await cache()).put(key(broadcastId), response);
    },
  };
}

/** This isolate's cache, over its location's. */
const isolateCache = new RoutingCache(cacheApiTables());

export function cachedRoutingTable(env: Env, broadcastId: string, maxAgeMs?: number): Promise<RoutingTable> {
  return isolateCache.get(broadcastId, () => env.BROADCAST.getByName(broadcastId).routingTable(), maxAgeMs);
}

/** How many broadcasts this isolate holds a table for. */
export const cachedTables = (): number => isolateCache.size;
