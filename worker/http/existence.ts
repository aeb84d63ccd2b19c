import type { Context } from "hono";
import { LRUCache } from "lru-cache";
import { ApiError } from "../errors.ts";
import type { AppEnv } from "./context.ts";

/**
 * Whether a broadcast exists, asked of the Directory before an anonymous
 * request reaches a Broadcast object: a made-up broadcast id must cost
 * nothing (a Durable Object that runs creates its storage). A broadcast exists
 * once the operator prepared it (a broadcaster ticket) or started it.
 *
 * Answers are kept per isolate in a bounded cache: known broadcasts for a
 * minute (they do not stop existing while watched), unknown ones for two
 * seconds (a broadcast that starts is joinable almost at once, and a crowd
 * waiting for it asks the Directory once per isolate, not once per viewer).
 */

const KNOWN_MS = 60_000;
const UNKNOWN_MS = 2_000;
const answers = new LRUCache<string, { exists: boolean }>({ max: 10_000 });

export async function broadcastExists(env: Env, broadcastId: string): Promise<boolean> {
  const cached = answers.get(broadcastId);
  if (cached) return cached.exists;
  const exists = await env.DIRECTORY.getByName("directory").exists(broadcastId);
  answers.set(broadcastId, { exists }, { ttl: exists ? KNOWN_MS : UNKNOWN_MS });
  return exists;
}

/** How many answers this isolate holds (never more than the cache's bound). */
export const cachedAnswers = (): number => answers.size;

export const broadcastNotFound = (broadcastId: string) =>
  new ApiError("NOT_FOUND", 404, "The broadcast has not started yet.", { details: { broadcastId } });

/**
 * For the open routes, first thing in the handler (after the request validated, so bad input is
 * a 400 wherever it is sent): a broadcast nobody started answers 404 without waking (or creating) its object.
 */
export async function requireBroadcast(c: Context<AppEnv>): Promise<void> {
  if (!(await broadcastExists(c.env, c.var.broadcastId))) throw broadcastNotFound(c.var.broadcastId);
}
