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
 *   moment it was read from the object: the first isolate whose copy expires claims the
 *   refresh, reads the object and stores the table; the others of that location keep the
 *   previous table until it is there (a claim is visible at once; a read takes a round trip to
 *   wherever the object lives, during which a location's isolates would otherwise all read).
 *
 * Each isolate's copy ages from when *it* looked (not from the object read), so the isolates
 * of a location do not all come back at the same instant; a table is then at most twice
 * `maxAgeMs` old, which the join path tolerates (a shard refuses a full or closed stage, and
 * the join reads afresh). Where the Cache API does nothing (local dev without it,
 * `*.workers.dev`, which Cloudflare does not cache for) every isolate reads the object
 * itself, as before. Admissions made in an isolate are counted into its copy, so that it
 * does not keep picking the stage it just filled.
 *
 * This module is the rule alone (the scale simulation runs it over its own locations);
 * cached-table.ts puts it over the Cache API for the Worker.
 */

export const MAX_AGE_MS = 1000;
/** How soon to look again for a table another isolate of the location is reading. */
export const COMING_RETRY_MS = 20;
/** Looks before an isolate stops waiting for another's read and reads the table itself. */
export const COMING_TRIES = 10;

/** A store shared by the isolates of one location: the Cache API in a Worker, a map in the simulation. */
export interface SharedTables {
  get(broadcastId: string): Promise<{ at: number; table: RoutingTable } | undefined>;
  put(broadcastId: string, at: number, table: RoutingTable): Promise<void>;
  /**
   * Whether this isolate may read the table afresh for the location: false while another has
   * claimed it within `forMs` (best effort: two isolates claiming in the same instant both read).
   */
  claim(broadcastId: string, now: number, forMs: number): Promise<boolean>;
}

interface Entry {
  at: number;
  table: Promise<RoutingTable | undefined>;
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
   *
   * Undefined: the location has no table yet and another isolate there is reading it; look
   * again in a moment (`COMING_RETRY_MS`) rather than read it too.
   */
  get(
    broadcastId: string,
    read: () => Promise<RoutingTable>,
    maxAgeMs = MAX_AGE_MS,
    now = Date.now(),
  ): Promise<RoutingTable | undefined> {
    const entry = this.#entries.get(broadcastId);
    if (entry && now - entry.at < maxAgeMs) return entry.table;
    const table = this.#lookUp(broadcastId, read, maxAgeMs, now);
    this.#entries.set(broadcastId, { at: now, table });
    // A failed read is not kept, nor a table still to come.
    const forget = () => {
      if (this.#entries.get(broadcastId)?.table === table) this.#entries.delete(broadcastId);
    };
    table.then((found) => found ?? forget(), forget);
    return table;
  }

  async #lookUp(
    broadcastId: string,
    read: () => Promise<RoutingTable>,
    maxAgeMs: number,
    now: number,
  ): Promise<RoutingTable | undefined> {
    if (this.#shared && maxAgeMs > 0) {
      const shared = await this.#shared.get(broadcastId).catch(() => undefined);
      if (shared && now - shared.at < maxAgeMs) return shared.table;
      // Out of date, or none: one isolate of the location reads it again; the others keep the
      // last one meanwhile (for a read's round trip), or wait for it, instead of all reading in
      // the same instant (at the start of a crowd, a location's isolates all look at once).
      if (!(await this.#shared.claim(broadcastId, now, maxAgeMs).catch(() => true))) return shared?.table;
    }
    const table = await read();
    // Best effort: a location that cannot store it reads again next time, as an isolate alone would.
    // Dated from the lookup (a little before the read): never younger than it is.
    await this.#shared?.put(broadcastId, now, table).catch(() => undefined);
    return table;
  }

  /**
   * Whether this isolate is the one of its location to do `name` now (at most once per `forMs` per
   * location, best effort): the request for capacity of a crowd's waiting joins. Always, alone.
   */
  async claim(name: string, now: number, forMs: number): Promise<boolean> {
    return this.#shared ? this.#shared.claim(name, now, forMs).catch(() => true) : true;
  }

  /** How many broadcasts this isolate holds a table for (never more than the cache's bound). */
  get size(): number {
    return this.#entries.size;
  }
}
