/**
 * Power-of-two-choices: pick two stages at random and take the emptier one.
 * Nearly as even as "least loaded" but without every isolate, working from
 * the same slightly stale table, sending a flash crowd to the same stage.
 */

export interface Candidate {
  arn: string;
  viewers: number;
  capacity: number;
}

export function chooseStage<C extends Candidate>(candidates: readonly C[], random = Math.random): C | undefined {
  const open = candidates.filter((c) => c.viewers < c.capacity);
  if (open.length <= 1) return open[0];
  const first = Math.floor(random() * open.length);
  let second = Math.floor(random() * (open.length - 1));
  if (second >= first) second++;
  const a = open[first]!;
  const b = open[second]!;
  return a.viewers / a.capacity <= b.viewers / b.capacity ? a : b;
}
