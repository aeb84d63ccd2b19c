/**
 * The scaling policy (docs/design.md, "Scaling"): given the stages of a broadcast and their
 * viewers, what to create, revive, drain and delete. Pure: the Broadcast DO
 * feeds it state and carries out its decision.
 *
 * - Scale up when the audience would fill more than `scaleUpAt` of the seats,
 *   by as many stages as it takes to get back under it (a flash crowd needs
 *   several at once), and keep at least one ready stage with free seats.
 * - Scale down only by draining, only stages past their warm-up, never the
 *   origin, and only when the audience would fit the remaining stages at
 *   `scaleDownAt` or less (hysteresis: no flapping around one threshold).
 * - A draining stage is deleted once empty or after the drain timeout; a
 *   draining stage is revived before a new one is created.
 * - When the broadcast is over, every stage goes.
 * - Demand is the audience plus the viewers expected over the next
 *   `leadSeconds` at the current join rate: a new stage takes a report and a
 *   CreateStage call to appear, and a flash crowd must not outrun that.
 * - Bounded: never more than the stages the audience needs (at `scaleUpAt`)
 *   plus one spare. The lead and the "one ready stage with room" rule only ever
 *   add that spare; as the crowd arrives and fills it, the next report asks for
 *   the next one. A join rate is a forecast; the audience is a fact, and every
 *   stage bought on a forecast costs money and quota whether or not the crowd comes.
 * - Arrivals too: while a crowd arrives, enough stages take joins that no
 *   stage admits more than `scaleUpAt` of `admissionRate` a second (its shards'
 *   rate together: a StageShard is one object), and that the stages with room
 *   hold `arrivalSeconds` of arrivals: what it takes for a stage to be asked
 *   for, created and seen by the joins. One spare is not enough once a crowd
 *   fills it faster than that (16,000 joins a second fill a stage of 10,000 in
 *   under a second): stages would come one at a time behind it and joins would
 *   wait until they give up. Those stages may go past the bound above while
 *   the crowd lasts; once it is in, the pool is brought back to needed plus one
 *   spare, one drained stage at a time (its viewers are themselves a small crowd
 *   for the others), warm-up or not: the arrivals those stages were bought for are over.
 * - A crowd the operator announces (its size and how fast it comes) is
 *   provisioned for from the announcement on, seats and arrival rate: a crowd
 *   that starts at full speed (a million in a minute is 16,000 joins a second
 *   from the first second) finds its stages ready, instead of one stage taking
 *   it while the others are created a few a second. Empty stages cost little:
 *   IVS bills participant-hours (one replica each until viewers come).
 */

import type { StageState } from "../../protocol/api.ts";

export interface StageLoad {
  arn: string;
  role: "origin" | "edge";
  state: StageState;
  viewers: number;
  /** ms since the epoch. */
  createdAt: number;
  drainingSince?: number;
  /** Viewers admitted per second lately (0 when the stage has not reported recently). */
  joinRate?: number;
}

export interface ScalingSettings {
  /** Viewers one stage seats. */
  capacity: number;
  /** Utilisation (0..1) above which stages are added. */
  scaleUpAt: number;
  /** Utilisation (0..1) the remaining stages must stay under for one to be drained. */
  scaleDownAt: number;
  maxStages: number;
  warmupMs: number;
  drainTimeoutMs: number;
  /** Seconds of arrivals, at the current join rate, to have seats for already: a crowd finds stages ready. */
  leadSeconds: number;
  /** Admissions a second one stage should take at most, over its shards (kept under `scaleUpAt` of it); Infinity: no limit. */
  admissionRate: number;
  /** While viewers arrive, the stages with room hold this many seconds of them (0: one spare stage is enough). */
  arrivalSeconds: number;
}

export interface ScalingInput {
  now: number;
  /** False once the broadcast has ended: everything is deleted. */
  live: boolean;
  stages: readonly StageLoad[];
  /** A crowd the operator announced (POST /crowd), until it is due to be in: viewers a second, and how many. */
  announced?: { joinRate: number; viewers: number };
}

export interface ScalingDecision {
  create: number;
  revive: string[];
  drain: string[];
  delete: string[];
}

const none = (): ScalingDecision => ({ create: 0, revive: [], drain: [], delete: [] });

export function decideScaling(input: ScalingInput, settings: ScalingSettings): ScalingDecision {
  const decision = none();
  if (!input.live) {
    decision.delete = input.stages.filter((s) => s.state !== "deleting").map((s) => s.arn);
    return decision;
  }

  const draining = input.stages.filter((s) => s.state === "draining");
  const active = input.stages.filter((s) => s.state === "creating" || s.state === "ready");
  // Viewers of draining stages are about to move to the others: they count as demand.
  const audience = input.stages.reduce((sum, s) => sum + (s.state === "deleting" ? 0 : s.viewers), 0);
  const measured = input.stages.reduce((sum, s) => sum + (s.state === "deleting" ? 0 : (s.joinRate ?? 0)), 0);
  const announced = input.announced ?? { joinRate: 0, viewers: 0 };
  const arriving = Math.max(measured, announced.joinRate);
  const demand = Math.max(audience + arriving * settings.leadSeconds, announced.viewers);

  const seatsAtScaleUp = settings.capacity * settings.scaleUpAt;
  const needed = Math.max(1, Math.ceil(audience / seatsAtScaleUp));
  // What the audience will need: an announced crowd's seats are bought before it comes.
  const expected = Math.max(needed, Math.ceil(announced.viewers / seatsAtScaleUp));
  let wanted = Math.max(needed, Math.ceil(demand / seatsAtScaleUp));
  // However the audience is spread, one ready stage must still have room below the threshold.
  const ready = active.filter((s) => s.state === "ready");
  const creating = active.length - ready.length;
  if (ready.length > 0 && creating === 0 && ready.every((s) => s.viewers >= seatsAtScaleUp)) {
    wanted = Math.max(wanted, active.length + 1);
  }
  wanted = Math.min(wanted, expected + 1);
  // Arrivals: the stages with seats left share the crowd; enough of them that each shard admits
  // under its rate. Stages at the threshold take few joins more and do not count as sharing.
  const atThreshold = active.filter((s) => s.viewers >= seatsAtScaleUp).length;
  const sharing = Math.max(
    Math.ceil(arriving / (settings.admissionRate * settings.scaleUpAt)),
    Math.ceil((arriving * settings.arrivalSeconds) / seatsAtScaleUp),
  );
  const forArrivals = arriving > 0 ? atThreshold + sharing : 0;
  wanted = Math.min(Math.max(wanted, forArrivals), settings.maxStages);

  if (wanted > active.length) {
    let missing = wanted - active.length;
    // Revive the fullest draining stages first: their viewers need not move at all.
    for (const stage of [...draining].sort((a, b) => b.viewers - a.viewers)) {
      if (missing === 0) break;
      decision.revive.push(stage.arn);
      missing--;
    }
    // Draining stages still count against the maximum until they are gone.
    const room = settings.maxStages - active.length - draining.length;
    decision.create = Math.max(0, Math.min(missing, room));
  } else {
    const drainable = active
      .filter((s) => s.state === "ready" && s.role !== "origin")
      .sort((a, b) => a.viewers - b.viewers);
    const fitsAtScaleDown = Math.max(1, Math.ceil(demand / (settings.capacity * settings.scaleDownAt)));
    const surplus = active.length - Math.max(fitsAtScaleDown, wanted);
    if (surplus > 0) {
      decision.drain = drainable
        .filter((s) => input.now - s.createdAt >= settings.warmupMs)
        .slice(0, surplus)
        .map((s) => s.arn);
    }
    if (decision.drain.length === 0 && active.length > Math.max(expected + 1, forArrivals) && draining.length === 0) {
      // Past the bound once a crowd is in: the stages bought for it (still in their warm-up) go,
      // one at a time, so that their viewers' moves stay a trickle. Older stages keep the hysteresis.
      // A stage gets `leadSeconds` first: while every stage is full no shard admits, so the measured
      // arrivals drop to nothing in the middle of a crowd, just as the stages bought for it come.
      const young = drainable.find((s) => {
        const age = input.now - s.createdAt;
        return age < settings.warmupMs && age >= settings.leadSeconds * 1000;
      });
      if (young) decision.drain = [young.arn];
    }
  }

  const revived = new Set(decision.revive);
  decision.delete = draining
    .filter((s) => !revived.has(s.arn))
    .filter((s) => s.viewers === 0 || input.now - (s.drainingSince ?? input.now) >= settings.drainTimeoutMs)
    .map((s) => s.arn);
  return decision;
}
