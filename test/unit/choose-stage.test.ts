import { describe, expect, it } from "vitest";
import { chooseStage } from "../../worker/join/choose-stage.ts";

const stages = [
  { arn: "a", viewers: 10, capacity: 100 },
  { arn: "b", viewers: 50, capacity: 100 },
  { arn: "c", viewers: 100, capacity: 100 },
];

describe("choosing a stage (power of two choices)", () => {
  it("takes the emptier of the two it draws", () => {
    // Draws index 0 and 1 of the open stages (a, b): a is emptier.
    const draws = [0.1, 0.9];
    expect(chooseStage(stages, Infinity, () => draws.shift()!)?.arn).toBe("a");
  });

  it("never picks a full stage", () => {
    for (let i = 0; i < 100; i++) expect(chooseStage(stages)?.arn).not.toBe("c");
  });

  it("answers the only open stage, or nothing when all are full", () => {
    expect(chooseStage([stages[2]!, stages[1]!])?.arn).toBe("b");
    expect(chooseStage([stages[2]!])).toBeUndefined();
    expect(chooseStage([])).toBeUndefined();
  });

  it("spreads joins across stages instead of piling onto one", () => {
    const even = Array.from({ length: 4 }, (_, i) => ({ arn: String(i), viewers: 0, capacity: 1000 }));
    for (let i = 0; i < 400; i++) chooseStage(even)!.viewers++;
    const counts = even.map((s) => s.viewers);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(2);
  });

  it("during a crowd picks uniformly, so that a stage just added does not take twice its share", () => {
    const crowd = [
      { arn: "old-1", viewers: 600, capacity: 1000, joinRate: 80 },
      { arn: "old-2", viewers: 600, capacity: 1000, joinRate: 80 },
      { arn: "new", viewers: 0, capacity: 1000 },
    ];
    const picks = (rate: number) => {
      let n = 0;
      for (let i = 0; i < 3_000; i++) if (chooseStage(crowd, rate)?.arn === "new") n++;
      return n / 3_000;
    };
    // Power of two choices: the new stage is in two pairs of three, and always wins them.
    expect(picks(Infinity)).toBeGreaterThan(0.6);
    // Shards admitting at half their limit or more: a third each.
    expect(picks(100)).toBeGreaterThan(0.28);
    expect(picks(100)).toBeLessThan(0.39);
  });
});
