import { LRUCache } from "lru-cache";
import type { RoutingTable } from "../broadcast/contract.ts";

/**
 * The join path's copy of a broadcast's routing table, per isolate, for about
 * a second: a flash crowd asks the Broadcast DO about once a second per
 * isolate instead of once per join. Admissions made here in the meantime are
 * counted into the copy, so this isolate does not keep picking the stage it
 * just filled.
 */

const MAX_AGE_MS = 1000;

interface Entry {
  at: number;
  table: Promise<RoutingTable>;
}

/** Bounded: the broadcasts this isolate serves now, not every id it was ever asked about. */
const entries = new LRUCache<string, Entry>({ max: 1_000 });

/**
 * `maxAgeMs` is shorter for joins waiting on a new stage; they still share
 * one read per isolate, never one each (a crowd of waiters must not become a
 * crowd of reads on the object that is busy creating their stage).
 */
export function cachedRoutingTable(
  env: Env,
  broadcastId: string,
  maxAgeMs = MAX_AGE_MS,
  now = Date.now(),
): Promise<RoutingTable> {
  const entry = entries.get(broadcastId);
  if (entry && now - entry.at < maxAgeMs) return entry.table;
  const table = env.BROADCAST.getByName(broadcastId).routingTable();
  entries.set(broadcastId, { at: now, table });
  // A failed read is not cached.
  table.catch(() => entries.delete(broadcastId));
  return table;
}

/** How many broadcasts this isolate holds a table for (never more than the cache's bound). */
export const cachedTables = (): number => entries.size;
