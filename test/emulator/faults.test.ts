import { describe, expect, it } from "vitest";
import { applyFaults, awsRateQuotas, Faults, installFaults, RateLimiter } from "../../emulator/faults.ts";
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

  it("answers a timed rule only for its time: a quota refused for a while, then served", async () => {
    await control(ctx.url, "faults", "PUT", {
      rules: [{ operation: "CreateStage", errorType: "ServiceQuotaExceededException", forMs: 300 }],
    });
    expect((await signedCall(ctx.url, "CreateStage", {})).status).toBe(402);
    expect((await signedCall(ctx.url, "CreateStage", {})).status).toBe(402);
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect((await signedCall(ctx.url, "CreateStage", {})).status).toBe(200);
  });

  it("reports every call per operation (throttled ones too) and every stage it created, with its tags", async () => {
    await control(ctx.url, "metrics", "DELETE");
    await control(ctx.url, "rate-limits", "PUT", { GetStage: 1 });
    const { json } = await signedCall(ctx.url, "CreateStage", { tags: { "fanout:request": "r1" } });
    const arn = (json as { stage: { arn: string } }).stage.arn;
    for (let i = 0; i < 3; i++) await signedCall(ctx.url, "GetStage", { arn });
    await signedCall(ctx.url, "DeleteStage", { arn });
    await control(ctx.url, "rate-limits", "PUT", {});
    const metrics = (await control(ctx.url, "metrics", "GET")) as {
      operations: Record<string, { calls: number; throttled: number; peakPerSecond: number }>;
      stages: { arn: string; tags: Record<string, string>; deletedAt: string | null }[];
    };
    expect(metrics.operations.GetStage).toMatchObject({ calls: 3 });
    expect(metrics.operations.GetStage!.throttled).toBeGreaterThanOrEqual(1);
    expect(metrics.operations.GetStage!.peakPerSecond).toBeGreaterThanOrEqual(2);
    expect(metrics.stages).toEqual([
      expect.objectContaining({ arn, tags: { "fanout:request": "r1" }, deletedAt: expect.any(String) }),
    ]);
  });

  it("answers short pages when told to, whatever maxResults asks, and the nextToken leads to the rest", async () => {
    const tag = `paging-${Date.now()}`;
    for (let i = 0; i < 3; i++) await signedCall(ctx.url, "CreateStage", { tags: { paging: tag } });
    await control(ctx.url, "paging", "PUT", { maxPageSize: 1 });
    const first = await signedCall(ctx.url, "ListStages", { maxResults: 100 });
    expect((first.json.stages as unknown[]).length).toBe(1);
    expect(first.json.nextToken).toEqual(expect.any(String));
    await control(ctx.url, "paging", "PUT", { maxPageSize: null });
    expect(
      ((await signedCall(ctx.url, "ListStages", { maxResults: 100 })).json.stages as unknown[]).length,
    ).toBeGreaterThanOrEqual(3);
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

  it("a latency spike stalls the drawn calls by spikeMs", async () => {
    const faults = Faults.parse({ spikeRate: 0.5, spikeMs: 120 });
    let started = performance.now();
    await applyFaults(faults, "GetStage", () => 0.1);
    expect(performance.now() - started).toBeGreaterThanOrEqual(110);
    started = performance.now();
    await applyFaults(faults, "GetStage", () => 0.9);
    expect(performance.now() - started).toBeLessThan(110);
  });

  it("a delay holds the call back before it is carried out, for its operation only, the given number of times", async () => {
    const faults = Faults.parse({ delays: [{ operation: "CreateStage", ms: 120, times: 1 }] });
    let started = performance.now();
    await applyFaults(faults, "GetStage");
    expect(performance.now() - started).toBeLessThan(110);
    await applyFaults(faults, "CreateStage");
    expect(performance.now() - started).toBeGreaterThanOrEqual(110);
    expect(faults.delays).toEqual([]);
    started = performance.now();
    await applyFaults(faults, "CreateStage");
    expect(performance.now() - started).toBeLessThan(110);
  });

  it("a rule given forMs expires that long after it is installed", async () => {
    const faults = installFaults(
      { rules: [{ operation: "DeleteStage", errorType: "InternalServerException", forMs: 60_000 }] },
      Date.now() - 61_000,
    ).data!;
    await expect(applyFaults(faults, "DeleteStage")).resolves.toBeUndefined();
    expect(faults.rules).toEqual([]);
  });

  it("the AWS rate quotas are per operation: 50 TPS for tokens, 5 for every other stage operation", () => {
    expect(awsRateQuotas).toMatchObject({
      CreateParticipantToken: 50,
      CreateStage: 5,
      DeleteStage: 5,
      GetStage: 5,
      ListStages: 5,
      ListParticipants: 5,
      DisconnectParticipant: 5,
      ListStageSessions: 5,
    });
  });

  it("a rate limit counts per second and per operation", () => {
    const limiter = new RateLimiter({ CreateStage: 1 });
    limiter.check("CreateStage", 1_000);
    expect(() => limiter.check("CreateStage", 1_500)).toThrow(/Rate exceeded/);
    expect(() => limiter.check("CreateStage", 2_000)).not.toThrow();
    expect(() => limiter.check("GetStage", 2_000)).not.toThrow();
  });
});
