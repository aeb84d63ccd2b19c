/**
 * Which stage a join takes. Power-of-two-choices: pick two stages at random
 * and take the emptier. Nearly as even as "least loaded" but without every
 * isolate, working from the same slightly stale table, sending a flash crowd
 * to the same stage.
 *
 * During a crowd (a stage's shard reported admissions at half the rate a
 * shard should stay under, or more) the pick is uniform among the open stages
 * instead: power-of-two-choices sends a stage just added, the emptiest, twice
 * its share of the crowd until it catches up, and the arrival rate is what the
 * pool was sized for then (policy.ts, "Arrivals too"). Seats even out again
 * once the crowd is in.
 */

export interface Candidate {
  arn: string;
  viewers: number;
  capacity: number;
  /** Admissions a second its shards last reported, together. */
  joinRate?: number;
}

/** A stage's shards as one isolate's copy of the table knows them: how many, and which refused it lately. */
export interface ShardCandidate {
  viewers: number;
  capacity: number;
  shards: number;
  /** Shards that answered full since this copy of the table was read (join.ts marks them). */
  refusedShards?: number[];
}

/**
 * Refused shards of one stage after which this copy of the table counts the stage as full until the
 * next read: its shards fill about evenly, and each refusal is a request, so joins stop asking a
 * stage that is full (or nearly) after two, not after all of its shards.
 */
export const SHARD_REFUSALS_PER_STAGE = 2;

/** A shard of the stage to ask for a seat: any, uniformly, but one that refused lately. */
export function chooseShard(stage: ShardCandidate, random = Math.random): number | undefined {
  const refused = stage.refusedShards ?? [];
  const open = stage.shards - refused.length;
  if (open <= 0) return undefined;
  let pick = Math.floor(random() * open);
  for (let i = 0; i < stage.shards; i++) {
    if (refused.includes(i)) continue;
    if (pick-- === 0) return i;
  }
  return undefined;
}

/**
 * A shard said full: remembered in this copy of the table, and the stage counted full after
 * `refusals` (a join for one stage in particular asks every shard before it says the stage is full).
 */
export function shardRefused(stage: ShardCandidate, shard: number, refusals = SHARD_REFUSALS_PER_STAGE): void {
  const refused = (stage.refusedShards ??= []);
  // Concurrent joins of one isolate share its copy: the same shard may be refused to several.
  if (!refused.includes(shard)) refused.push(shard);
  if (stage.refusedShards.length >= Math.min(stage.shards, refusals)) stage.viewers = stage.capacity;
}

/** `admissionRate`: admissions a second a stage should stay under, over its shards (Infinity: seats alone decide). */
export function chooseStage<C extends Candidate>(
  candidates: readonly C[],
  admissionRate = Infinity,
  random = Math.random,
): C | undefined {
  const open = candidates.filter((c) => c.viewers < c.capacity);
  if (open.length <= 1) return open[0];
  const first = Math.floor(random() * open.length);
  if (open.some((c) => (c.joinRate ?? 0) * 2 >= admissionRate)) return open[first];
  let second = Math.floor(random() * (open.length - 1));
  if (second >= first) second++;
  const a = open[first]!;
  const b = open[second]!;
  return a.viewers / a.capacity <= b.viewers / b.capacity ? a : b;
}
