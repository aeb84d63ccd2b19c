import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { relaysToTry } from "../../worker/broadcast/timing.ts";
import { chooseShard, shardRefused, SHARD_REFUSALS_PER_STAGE } from "../../worker/join/choose-stage.ts";
import { shardCapacity, shardName, shardOf, shardsPerStage } from "../../worker/shard/admission.ts";
import { newParticipantIdWhere } from "../../worker/tokens/claims.ts";

describe("a stage's shards", () => {
  it("a stage of 10,000 seats is forty shards of 250; its shards' seats add up to its capacity, none past SEATS_PER_SHARD", () => {
    expect(shardsPerStage(10_000, 250)).toBe(40);
    expect(shardsPerStage(3, 250)).toBe(1);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 1, max: 5_000 }), (capacity, seats) => {
        const shards = shardsPerStage(capacity, seats);
        const each = Array.from({ length: shards }, (_, i) => shardCapacity(capacity, shards, i));
        expect(each.reduce((a, b) => a + b, 0)).toBe(capacity);
        expect(Math.max(...each)).toBeLessThanOrEqual(seats);
        expect(Math.max(...each) - Math.min(...each)).toBeLessThanOrEqual(1);
      }),
    );
  });

  it("the head is named by the stage ARN itself (a stage from before shards keeps its one shard); the others after it", () => {
    const arn = "arn:aws:ivs:us-east-1:123456789012:stage/abcdEFGH1234";
    expect(shardName(arn, 0)).toBe(arn);
    expect(shardName(arn, 7)).toBe(`${arn}#7`);
  });

  it("a participant's shard follows from its id alone, the same every time, and ids spread evenly", () => {
    const counts = Array.from({ length: 40 }, () => 0);
    for (let i = 0; i < 40_000; i++) counts[shardOf(`participant-${i}-${i * 7919}`, 40)]!++;
    expect(Math.min(...counts)).toBeGreaterThan(850);
    expect(Math.max(...counts)).toBeLessThan(1_150);
    expect(shardOf("abcDEF123456", 40)).toBe(shardOf("abcDEF123456", 40));
    expect(shardOf("anything", 1)).toBe(0);
  });

  it("a self-signed token's participant id is drawn to fall on the shard the join chose", () => {
    for (let wanted = 0; wanted < 40; wanted++)
      expect(
        shardOf(
          newParticipantIdWhere((id) => shardOf(id, 40) === wanted),
          40,
        ),
      ).toBe(wanted);
  });

  it("a join asks a shard that has not refused it lately, and counts the stage full after a few refusals", () => {
    const stage = { viewers: 5_000, capacity: 10_000, shards: 40 };
    shardRefused(stage, 3);
    // Concurrent joins may both hear the same shard refuse: it counts once.
    shardRefused(stage, 3);
    expect(stage.viewers).toBe(5_000);
    for (let r = 0; r < 1; r += 0.01) expect(chooseShard(stage, () => r)).not.toBe(3);
    shardRefused(stage, 17);
    expect(SHARD_REFUSALS_PER_STAGE).toBe(2);
    expect(stage.viewers).toBe(stage.capacity);
    // A stage of one shard is full after its one refusal.
    const small = { viewers: 1, capacity: 3, shards: 1 };
    expect(chooseShard(small, () => 0.99)).toBe(0);
    shardRefused(small, 0);
    expect(small.viewers).toBe(3);
    expect(chooseShard(small)).toBeUndefined();
  });
});

describe("the relays a stats socket tries", () => {
  it("distinct random relays of the spread, those reported full left out while others are left", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 500 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 499 })),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        (spread, full, r) => {
          const tried = relaysToTry(spread, full, 3, () => r);
          expect(new Set(tried).size).toBe(tried.length);
          expect(tried.every((i) => i >= 0 && i < spread)).toBe(true);
          const open = Array.from({ length: spread }, (_, i) => i).filter((i) => !full.includes(i));
          if (open.length > 0) {
            expect(tried.every((i) => !full.includes(i))).toBe(true);
            expect(tried).toHaveLength(Math.min(3, open.length));
          } else expect(tried).toHaveLength(Math.min(3, spread));
        },
      ),
    );
  });
});
