import type { ShardState } from "./schema.ts";

/**
 * The shard's rules, apart from its storage: whether a viewer takes a seat, and when a change
 * is reported to the broadcast. The StageShard object applies them; the scale simulation
 * (bench/scale.ts) runs the same functions.
 */

export type SeatRefusal = "full" | "draining" | "closed";

/** A seat, if the stage takes viewers (`ready`) and has room. */
export function seatFor(state: ShardState, viewers: number, capacity: number): SeatRefusal | undefined {
  if (state !== "ready") return state;
  if (viewers >= capacity) return "full";
  return undefined;
}

/** Load reports: at most one a second, but at once when a change crosses a threshold the broadcast scales on. */
export const REPORT_INTERVAL_MS = 1000;

export function reportIsUrgent(before: number, after: number, capacity: number, scaleUpAt: number): boolean {
  const mark = capacity * scaleUpAt;
  return before < mark !== after < mark || after >= capacity || before >= capacity || after === 0;
}

/** When the next report goes: now if urgent, else a report interval after the last. */
export const reportAt = (urgent: boolean, now: number, lastReportedAt: number) =>
  urgent ? now : Math.max(now, lastReportedAt + REPORT_INTERVAL_MS);

// ── a stage's shards ─────────────────────────────────────────────────────────
//
// A StageShard is one object, and one object takes a few hundred requests a second at most: a crowd
// of 16,000 joins a second on one stage would be 16,000 a second on its shard. So a stage's seats are
// spread over several shards of at most SEATS_PER_SHARD seats each, from the stage's creation: a crowd
// meets all of them from its first second, before any report could tell anyone it is coming, and a
// shard admits at most its own seats however fast the crowd comes. A viewer's shard follows from its
// participant id (a hash), so every later call as that viewer (heartbeat, leave, renew, socket) finds
// it with nothing more than the stage's shard count, which the routing table carries. The first shard
// (index 0, named by the stage ARN alone, as when a stage had one) is the stage's head: the others
// report to it, it reports the stage to the broadcast, and it passes on what the broadcast tells the stage.

/** How many shards a stage of `capacity` seats is spread over. */
export const shardsPerStage = (capacity: number, seatsPerShard: number) =>
  Math.max(1, Math.ceil(capacity / seatsPerShard));

/** The seats of shard `index` of `shards`: the stage's capacity shared out, the first ones taking the remainder. */
export const shardCapacity = (capacity: number, shards: number, index: number) =>
  Math.floor(capacity / shards) + (index < capacity % shards ? 1 : 0);

/** The object name of a stage's shard: the head is the stage ARN itself. */
export const shardName = (stageArn: string, index: number) => (index === 0 ? stageArn : `${stageArn}#${index}`);

/** Which of a stage's `shards` holds a participant (FNV-1a of its id). */
export function shardOf(participantId: string, shards: number): number {
  if (shards <= 1) return 0;
  let hash = 0x811c9dc5;
  for (let i = 0; i < participantId.length; i++) {
    hash ^= participantId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}
