import { describe, expect, it } from "vitest";
import { applyFaults, Faults, RateLimiter } from "../../emulator/faults.ts";
import { AwsError } from "../../emulator/errors.ts";
import { control, signedCall, useEmulator } from "../support/emulator.ts";

describe("fault injection", () => {
  const ctx = useEmulator();

  it("answers a given error for a given operation, the given number of times", async () => {
    await control(ctx.url, "faults", "PUT", {
      rules: [{ operation: "CreateStage", errorType: "ServiceQuotaExceededException", times: 2 }],
    });
    expect(await signedCall(ctx.url, "CreateStage", {})).toMatchObject({
      status: 402,
      type: "ServiceQuotaExceededException",
    });
    // Other operations are untouched.
    expect((await signedCall(ctx.url, "ListStages", {})).status).toBe(200);
    expect((await signedCall(ctx.url, "CreateStage", {})).status).toBe(402);
    expect((await signedCall(ctx.url, "CreateStage", {})).status).toBe(200);
  });

  it("adds latency to every operation", async () => {
    await control(ctx.url, "faults", "PUT", { latencyMs: 150 });
    const started = performance.now();
    await signedCall(ctx.url, "ListStages", {});
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    await control(ctx.url, "faults", "DELETE");
  });

  it("fails every call at an error rate of 1, and none at 0", async () => {
    await control(ctx.url, "faults", "PUT", { errorRate: 1 });
    expect(await signedCall(ctx.url, "ListStages", {})).toMatchObject({ status: 500, type: "InternalServerException" });
    await control(ctx.url, "faults", "PUT", { errorRate: 0 });
    expect((await signedCall(ctx.url, "ListStages", {})).status).toBe(200);
  });

  it("throttles an operation beyond its TPS limit with a 429", async () => {
    await control(ctx.url, "rate-limits", "PUT", { ListStages: 2 });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await signedCall(ctx.url, "ListStages", {})).status);
    expect(statuses).toContain(429);
    await control(ctx.url, "rate-limits", "PUT", {});
  });

  it("refuses a malformed fault setting with a 400", async () => {
    const response = await fetch(`${ctx.url}/_emulator/faults`, { method: "PUT", body: '{"errorRate": 7}' });
    expect(response.status).toBe(400);
  });
});

describe("fault rules, without a server", () => {
  it("a random error is drawn against the error rate", async () => {
    const faults = Faults.parse({ errorRate: 0.5 });
    await expect(applyFaults(faults, "GetStage", () => 0.49)).rejects.toBeInstanceOf(AwsError);
    await expect(applyFaults(faults, "GetStage", () => 0.5)).resolves.toBeUndefined();
  });

  it("a rate limit counts per second and per operation", () => {
    const limiter = new RateLimiter({ CreateStage: 1 });
    limiter.check("CreateStage", 1_000);
    expect(() => limiter.check("CreateStage", 1_500)).toThrow(/Rate exceeded/);
    expect(() => limiter.check("CreateStage", 2_000)).not.toThrow();
    expect(() => limiter.check("GetStage", 2_000)).not.toThrow();
  });
});
