import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chooseStage } from "../../worker/join/choose-stage.ts";
import { decideScaling, type ScalingSettings, type StageLoad } from "../../worker/scaling/policy.ts";

const settings: ScalingSettings = {
  capacity: 100,
  scaleUpAt: 0.8,
  scaleDownAt: 0.5,
  maxStages: 5,
  warmupMs: 300_000,
  drainTimeoutMs: 600_000,
  leadSeconds: 10,
  admissionRate: Infinity,
  arrivalSeconds: 0,
};
const NOW = 10_000_000;
const old = NOW - 3_600_000;
const stage = (arn: string, viewers: number, extra: Partial<StageLoad> = {}): StageLoad => ({
  arn,
  role: "edge",
  state: "ready",
  viewers,
  createdAt: old,
  ...extra,
});
const origin = (viewers: number, extra: Partial<StageLoad> = {}) =>
  stage("origin", viewers, { role: "origin", ...extra });
const decide = (
  stages: StageLoad[],
  overrides: Partial<ScalingSettings> = {},
  live = true,
  announced?: { joinRate: number; viewers: number },
) => decideScaling({ now: NOW, live, stages, announced }, { ...settings, ...overrides });

describe("the scaling policy", () => {
  it("keeps one stage when the audience fits under the threshold", () => {
    expect(decide([origin(50)])).toEqual({ create: 0, revive: [], drain: [], delete: [] });
  });

  it("adds a stage when utilisation passes the threshold", () => {
    expect(decide([origin(81)]).create).toBe(1);
  });

  it("adds as many stages as it takes to get back under the threshold, not just one", () => {
    // 390 viewers at 80 per stage need 5 stages.
    expect(decide([origin(100), stage("a", 100), stage("b", 95), stage("c", 95)]).create).toBe(1);
    expect(decide([origin(390)]).create).toBe(4);
  });

  it("counts stages being created, so concurrent triggers do not create twice", () => {
    expect(decide([origin(81), stage("new", 0, { state: "creating", createdAt: NOW })]).create).toBe(0);
  });

  it("adds a stage when every ready stage is at the threshold even if the total is not", () => {
    // Two stages, 160 viewers: exactly at 80 % overall, but no ready stage has room below it.
    expect(decide([origin(80), stage("a", 80)]).create).toBe(1);
  });

  it("never goes past the maximum number of stages", () => {
    expect(decide([origin(10_000)]).create).toBe(4);
    expect(decide([origin(100), stage("a", 100), stage("b", 100), stage("c", 100), stage("d", 100)]).create).toBe(0);
  });

  it("counts draining stages against the maximum until they are gone", () => {
    const stages = [
      origin(100),
      stage("a", 100),
      stage("b", 100),
      stage("c", 100),
      stage("d", 0, { state: "draining", drainingSince: NOW }),
    ];
    // d is revived rather than a sixth stage created.
    expect(decide(stages)).toMatchObject({ create: 0, revive: ["d"] });
  });

  it("revives a draining stage before creating a new one", () => {
    const decision = decide([origin(80), stage("a", 80), stage("d", 5, { state: "draining", drainingSince: NOW })]);
    expect(decision.revive).toEqual(["d"]);
    expect(decision.create).toBe(0);
  });

  it("drains the emptiest stage past its warm-up when the rest can seat the audience", () => {
    const decision = decide([origin(30), stage("a", 10), stage("b", 5)]);
    expect(decision.drain).toEqual(["b", "a"]);
  });

  it("does not drain a stage still in its warm-up", () => {
    expect(decide([origin(10), stage("young", 0, { createdAt: NOW - 60_000 })]).drain).toEqual([]);
  });

  it("never drains the origin while live", () => {
    expect(decide([origin(0), stage("a", 0)]).drain).toEqual(["a"]);
    expect(decide([origin(0)]).drain).toEqual([]);
  });

  it("does not drain while the remaining stages would be over the scale-down threshold (hysteresis)", () => {
    // 110 viewers: 2 stages needed at 80 %, but 3 at 50 %: keep all three.
    expect(decide([origin(40), stage("a", 40), stage("b", 30)]).drain).toEqual([]);
  });

  it("deletes a draining stage once it is empty", () => {
    expect(decide([origin(10), stage("d", 0, { state: "draining", drainingSince: NOW - 1000 })]).delete).toEqual(["d"]);
  });

  it("deletes a draining stage after the drain timeout even with viewers left", () => {
    const stuck = stage("d", 3, { state: "draining", drainingSince: NOW - 600_000 });
    expect(decide([origin(10), stuck]).delete).toEqual(["d"]);
    expect(decide([origin(10), { ...stuck, drainingSince: NOW - 1000 }]).delete).toEqual([]);
  });

  it("deletes every stage, the origin included, when the broadcast has ended", () => {
    const decision = decide(
      [origin(5), stage("a", 3), stage("d", 0, { state: "draining" }), stage("x", 0, { state: "deleting" })],
      {},
      false,
    );
    expect(decision).toEqual({ create: 0, revive: [], drain: [], delete: ["origin", "a", "d"] });
  });

  it("provisions for the viewers arriving over the lead time, one spare stage ahead of the audience (flash crowds)", () => {
    // 50 viewers in, arriving at 20 a second: a spare stage now, before the crowd is in.
    expect(decide([origin(50, { joinRate: 20 })]).create).toBe(1);
    expect(decide([origin(50, { joinRate: 0 })]).create).toBe(0);
  });

  it("never wants more than the stages the audience needs plus one spare, whatever the join rate", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ viewers: fc.nat(200), joinRate: fc.nat(5_000) }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 300 }),
        (loads, capacity) => {
          const stages = loads.map((l, i) => (i === 0 ? origin(l.viewers, l) : stage(`s${i}`, l.viewers, l)));
          const s = { ...settings, capacity, maxStages: 1000 };
          const d = decideScaling({ now: NOW, live: true, stages }, s);
          const audience = loads.reduce((sum, l) => sum + l.viewers, 0);
          const needed = Math.max(1, Math.ceil(audience / (capacity * s.scaleUpAt)));
          expect(stages.length + d.create + d.revive.length - d.drain.length).toBeLessThanOrEqual(
            Math.max(stages.length, needed + 1),
          );
        },
      ),
      { seed: 20261122, numRuns: 500 },
    );
  });

  it("after a crowd the pool is what the audience needs plus one: 1,500 viewers at 150 a second on stages of 500", () => {
    expect(simulateCrowd({ viewers: 1_500, perSecond: 150, capacity: 500 }).stages).toBeLessThanOrEqual(4 + 1);
    // 3 viewers on stages of 2: 2 stages needed at 80 %, one spare.
    expect(simulateCrowd({ viewers: 3, perSecond: 3, capacity: 2 }).stages).toBeLessThanOrEqual(2 + 1);
  });

  it("adds stages during a crowd so that no shard admits more than the admission rate allows", () => {
    // 100 admissions a second at most per shard, kept under 80 %: 400 a second need 5 stages taking joins.
    const crowd = [origin(20, { joinRate: 400 })];
    expect(decide(crowd, { admissionRate: 100, maxStages: 10 }).create).toBe(4);
    // Without the limit the audience alone decides: 20 viewers need one stage, plus the lead's spare.
    expect(decide(crowd, { maxStages: 10 }).create).toBe(1);
    // A stage at the threshold takes few joins more: it does not count as sharing the crowd.
    const full = [origin(80, { joinRate: 0 }), stage("a", 10, { joinRate: 200 })];
    expect(decide(full, { admissionRate: 100, maxStages: 10 }).create).toBe(2);
  });

  it("while a crowd arrives, the stages with room hold arrivalSeconds of it: stages come as fast as it fills them", () => {
    // 16,000 joins a second on stages of 10,000 whose shards together take 20,000 a second: the rate
    // alone wants 1 stage sharing it, but one fills in under a second. Three seconds of it is 48,000
    // seats: 6 stages below the threshold (8,000 each), besides the full origin.
    const crowd = [origin(10_000, { joinRate: 16_000 })];
    const s = { capacity: 10_000, admissionRate: 20_000, maxStages: 100 };
    expect(decide(crowd, { ...s, arrivalSeconds: 3 }).create).toBe(6);
    // Without it, one spare stage ahead of the audience: it would fill before the next came.
    expect(decide(crowd, { ...s, arrivalSeconds: 0 }).create).toBe(2);
    // Over when it is in: back to needed plus one, one young stage at a time (next test).
  });

  it("a stage bought for a crowd is not drained before leadSeconds: every stage full, the measured arrivals drop to nothing mid-crowd", () => {
    const justMade = NOW - 2_000;
    const pool = [
      origin(100),
      stage("a", 100, { createdAt: justMade }),
      ...["b", "c", "d"].map((arn) => stage(arn, 0, { createdAt: justMade })),
    ];
    expect(decide(pool, { admissionRate: 100 }).drain).toEqual([]);
    const later = pool.map((x) => (x.arn === "origin" ? x : { ...x, createdAt: NOW - 11_000 }));
    expect(decide(later, { admissionRate: 100 }).drain).toEqual(["b"]);
  });

  it("brings the pool back to needed plus one once the crowd is in, one young stage at a time", () => {
    const young = NOW - 30_000;
    const after = [
      origin(60),
      stage("a", 60, { createdAt: young }),
      stage("b", 20, { createdAt: young }),
      stage("c", 10, { createdAt: young }),
      stage("d", 30, { createdAt: young }),
    ];
    // 180 viewers need 3 stages at 80: the emptiest young stage goes first, and only it.
    expect(decide(after, { admissionRate: 100 }).drain).toEqual(["c"]);
    // While one drains, the next waits: its viewers must have moved first.
    const draining = after.map((x) => (x.arn === "c" ? { ...x, state: "draining" as const, drainingSince: NOW } : x));
    expect(decide(draining, { admissionRate: 100 }).drain).toEqual([]);
    // Not while the crowd still needs them.
    expect(
      decide(
        after.map((x) => ({ ...x, joinRate: 80 })),
        { admissionRate: 100 },
      ).drain,
    ).toEqual([]);
  });

  it("never wants more than needed plus one, or the stages the arrivals need, whatever the loads", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ viewers: fc.nat(200), joinRate: fc.nat(5_000) }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 1_000 }),
        (loads, capacity, admissionRate) => {
          const stages = loads.map((l, i) => (i === 0 ? origin(l.viewers, l) : stage(`s${i}`, l.viewers, l)));
          const s = { ...settings, capacity, admissionRate, maxStages: 1000 };
          const d = decideScaling({ now: NOW, live: true, stages }, s);
          const audience = loads.reduce((sum, l) => sum + l.viewers, 0);
          const arriving = loads.reduce((sum, l) => sum + l.joinRate, 0);
          const needed = Math.max(1, Math.ceil(audience / (capacity * s.scaleUpAt)));
          const sharing = Math.ceil(arriving / (admissionRate * s.scaleUpAt));
          // (arrivalSeconds is 0 here: its seats are the next test's.)
          const atThreshold = loads.filter((l) => l.viewers >= capacity * s.scaleUpAt).length;
          expect(stages.length + d.create + d.revive.length - d.drain.length).toBeLessThanOrEqual(
            Math.max(stages.length, needed + 1, atThreshold + sharing),
          );
        },
      ),
      { seed: 20261122, numRuns: 500 },
    );
  });

  it("a crowd faster than one shard admits is spread under the limit, and the pool is needed plus one after it", () => {
    // 3,000 viewers at 300 a second on stages of 1,000 seats whose shards take 100 a second.
    const result = simulateCrowd({ viewers: 3_000, perSecond: 300, capacity: 1_000, admissionRate: 100 });
    // After the stages the crowd asked for were ready (a second of decisions), no stage took more than the limit.
    expect(result.peakAdmissionsAfterFirstSecond).toBeLessThanOrEqual(100);
    // 3,000 viewers need 4 stages at 80 %.
    expect(result.stages).toBeLessThanOrEqual(4 + 1);
  });

  it("provisions an announced crowd's seats and arrival rate before it comes, and drains what it did not need once it is due", () => {
    // 400 viewers within 10 s announced, none in yet: 5 stages of 80 for the seats, the origin and 4 more.
    const before = decide([origin(0)], { maxStages: 20 }, true, { joinRate: 40, viewers: 400 });
    expect(before.create).toBe(4);
    // Not announced: one stage is enough for no one.
    expect(decide([origin(0)], { maxStages: 20 }).create).toBe(0);
    // The rate alone can ask for more: 1,000 a second at 100 per shard (80 kept) is 13 stages sharing it.
    expect(
      decide([origin(0)], { maxStages: 20, admissionRate: 100 }, true, { joinRate: 1_000, viewers: 400 }).create,
    ).toBe(12);
    // The crowd came to 100 and the announcement is over: the young stages go, one at a time.
    const young = NOW - 30_000;
    const after = [origin(50), ...[1, 2, 3, 4, 5].map((i) => stage(`e${i}`, 10, { createdAt: young }))];
    expect(decide(after).drain).toEqual(["e1"]);
  });

  it("does not drain while viewers are still arriving", () => {
    expect(decide([origin(10, { joinRate: 5 }), stage("a", 0)]).drain).toEqual([]);
    expect(decide([origin(10, { joinRate: 0 }), stage("a", 0)]).drain).toEqual(["a"]);
  });
});

/**
 * A crowd arriving at `perSecond`, the policy run every second (as the load reports do) and its
 * decision carried out at once, each viewer seated by the join path's stage choice (the table it
 * works from is the last second's); a draining stage's viewers move to the others at once. The stages at the
 * end, and the most admissions one stage took in a second once the first decisions were carried out.
 */
function simulateCrowd(crowd: { viewers: number; perSecond: number; capacity: number; admissionRate?: number }) {
  const s = {
    ...settings,
    capacity: crowd.capacity,
    maxStages: 100,
    warmupMs: 0,
    admissionRate: crowd.admissionRate ?? Infinity,
  };
  let stages: StageLoad[] = [origin(0)];
  let arrived = 0;
  let peakAdmissionsAfterFirstSecond = 0;
  let random = 1;
  const next = () => (random = (random * 48_271) % 2_147_483_647) / 2_147_483_647;
  for (let second = 0; second < 600; second++) {
    const now = NOW + second * 1000;
    const arriving = Math.min(crowd.perSecond, crowd.viewers - arrived);
    const moving = stages.filter((x) => x.state === "draining").reduce((n, x) => n + x.viewers, 0);
    for (const x of stages) if (x.state === "draining") x.viewers = 0;
    const admitted = new Map<string, number>();
    const ready = stages.filter((x) => x.state === "ready").map((x) => ({ ...x, capacity: crowd.capacity, stage: x }));
    for (let i = 0; i < arriving + moving; i++) {
      const choice = chooseStage(ready, s.admissionRate, next);
      if (!choice) continue;
      choice.viewers++;
      const target = choice.stage;
      target.viewers++;
      admitted.set(target.arn, (admitted.get(target.arn) ?? 0) + 1);
    }
    if (second > 0) peakAdmissionsAfterFirstSecond = Math.max(peakAdmissionsAfterFirstSecond, ...admitted.values());
    arrived += arriving;
    stages = stages.map((x) => ({ ...x, joinRate: admitted.get(x.arn) ?? 0 }));
    const d = decideScaling({ now, live: true, stages }, s);
    for (let i = 0; i < d.create; i++) stages.push(stage(`e${second}-${i}`, 0, { createdAt: now }));
    stages = stages.filter((x) => !d.delete.includes(x.arn));
    for (const x of stages) if (d.drain.includes(x.arn)) Object.assign(x, { state: "draining", drainingSince: now });
  }
  return { stages: stages.length, peakAdmissionsAfterFirstSecond };
}
