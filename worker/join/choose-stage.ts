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
  /** Admissions a second its shard last reported. */
  joinRate?: number;
}

/** `admissionRate`: admissions a second a shard should stay under (Infinity: seats alone decide). */
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
