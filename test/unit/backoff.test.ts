import { describe, expect, it } from "vitest";
import { backoffDelay } from "../../protocol/backoff.ts";

describe("retry backoff", () => {
  it("grows exponentially from the base, as the upper bound of a full jitter", () => {
    const top = (attempt: number) => backoffDelay(attempt, { baseMs: 100, capMs: 60_000 }, () => 0.999999);
    expect([0, 1, 2, 3].map(top)).toEqual([99, 199, 399, 799]);
  });

  it("is random between zero and the bound", () => {
    expect(backoffDelay(3, { baseMs: 100 }, () => 0)).toBe(0);
    expect(backoffDelay(3, { baseMs: 100 }, () => 0.5)).toBe(400);
  });

  it("never waits longer than the cap", () => {
    expect(backoffDelay(30, { baseMs: 100, capMs: 5_000 }, () => 0.999999)).toBeLessThan(5_000);
  });
});
