import { env } from "cloudflare:test";
import { AwsClient } from "aws4fetch";
import { afterEach, describe, expect, it } from "vitest";
import { IvsClient, SIGNING_NAME } from "../../worker/ivs/client.ts";
import { IvsError } from "../../worker/ivs/error.ts";

/** The Worker's IVS client, running in workerd, against the emulator on loopback. */

const endpoint = env.IVS_ENDPOINT;

function client(options: Partial<ConstructorParameters<typeof IvsClient>[0]> = {}) {
  return new IvsClient({
    region: "us-east-1",
    endpoint,
    accessKeyId: env.AWS_ACCESS_KEY_ID!,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
    retryBaseMs: 5,
    ...options,
  });
}

async function setFaults(faults: object) {
  const response = await fetch(`${endpoint}/_emulator/faults`, { method: "PUT", body: JSON.stringify(faults) });
  expect(response.ok).toBe(true);
}

afterEach(async () => {
  await fetch(`${endpoint}/_emulator/faults`, { method: "DELETE" });
});

describe("the IVS client", () => {
  it("signs with signing name ivs, which the emulator accepts", async () => {
    expect(SIGNING_NAME).toBe("ivs");
    const { stages } = await client().listStages({ maxResults: 1 });
    expect(Array.isArray(stages)).toBe(true);
  });

  it("a request signed with the name aws4fetch guesses from the host is rejected", async () => {
    const guessing = new AwsClient({
      accessKeyId: env.AWS_ACCESS_KEY_ID!,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
      region: "us-east-1",
      service: "ivsrealtime",
      retries: 0,
    });
    const response = await guessing.fetch(`${endpoint}/ListStages`, { method: "POST", body: "{}" });
    expect(response.status).toBe(403);
    expect(response.headers.get("x-amzn-ErrorType")).toBe("InvalidSignatureException");
  });

  it("pages through ListStages to the last page", async () => {
    const ivs = client();
    const marker = `paging-${Date.now()}`;
    const created = [];
    for (let i = 0; i < 105; i++) created.push((await ivs.createStage({ tags: { test: marker } })).stage.arn);
    const mine = (await ivs.listAllStages()).filter((s) => s.tags?.test === marker).map((s) => s.arn);
    expect(mine.sort()).toEqual(created.sort());
    for (const arn of created) await ivs.deleteStage(arn);
  });

  it("retries a server error and succeeds when IVS recovers", async () => {
    await setFaults({ rules: [{ operation: "ListStages", errorType: "InternalServerException", times: 2 }] });
    await expect(client({ maxRetries: 3 }).listStages()).resolves.toHaveProperty("stages");
  });

  it("retries throttling (429) and succeeds when the rate allows", async () => {
    await setFaults({ rules: [{ operation: "ListStages", errorType: "ThrottlingException", times: 1 }] });
    await expect(client({ maxRetries: 1 }).listStages()).resolves.toHaveProperty("stages");
  });

  it("gives up after its retries with the last error", async () => {
    await setFaults({ rules: [{ operation: "ListStages", errorType: "InternalServerException", times: 3 }] });
    const error = await client({ maxRetries: 2 })
      .listStages()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IvsError);
    expect(error).toMatchObject({ kind: "server", status: 500, type: "InternalServerException" });
  });

  it("turns 402 into a quota error and does not retry it", async () => {
    // One failure only: a retry would have succeeded, so an error here proves there was none.
    await setFaults({ rules: [{ operation: "CreateStage", errorType: "ServiceQuotaExceededException", times: 1 }] });
    const error = await client({ maxRetries: 3 })
      .createStage()
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      kind: "quota",
      status: 402,
      type: "ServiceQuotaExceededException",
      retryable: false,
    });
  });

  it("does not retry validation, not-found or conflict errors", async () => {
    for (const [errorType, kind] of [
      ["ValidationException", "validation"],
      ["ResourceNotFoundException", "not_found"],
      ["ConflictException", "conflict"],
    ] as const) {
      await setFaults({ rules: [{ operation: "ListStages", errorType, times: 1 }] });
      const error = await client({ maxRetries: 3 })
        .listStages()
        .catch((e: unknown) => e);
      expect(error, errorType).toMatchObject({ kind, type: errorType, retryable: false });
    }
  });

  it("tells a real not-found from the emulator apart", async () => {
    const error = await client()
      .getStage("arn:aws:ivs:us-east-1:123456789012:stage/notThere")
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "not_found", status: 404, type: "ResourceNotFoundException" });
    expect((error as Error).message).toContain("notThere");
  });

  it("times out a call that does not answer, and retries it", async () => {
    await setFaults({ latencyMs: 400 });
    const error = await client({ timeoutMs: 100, maxRetries: 1 })
      .listStages()
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "timeout", type: "TimeoutError", retryable: true });
  });

  it("reports a network failure as retryable after retrying it", async () => {
    const error = await client({ endpoint: "http://127.0.0.1:9", maxRetries: 1 })
      .listStages()
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "network", status: 0, retryable: true });
  });

  it("does not repeat a CreateStage that failed at the server or timed out: it may have created the stage", async () => {
    // One failure only: a retry would have succeeded, so an error here proves there was none.
    await setFaults({ rules: [{ operation: "CreateStage", errorType: "InternalServerException", times: 1 }] });
    await expect(client({ maxRetries: 3 }).createStage()).rejects.toMatchObject({ kind: "server" });
  });

  it("retries a throttled CreateStage: a 429 means IVS did not run it", async () => {
    await setFaults({ rules: [{ operation: "CreateStage", errorType: "ThrottlingException", times: 1 }] });
    const { stage } = await client({ maxRetries: 1, throttleRetryBaseMs: 10 }).createStage();
    await client().deleteStage(stage.arn);
  });

  it("asks the account's budget before every attempt of a 5-TPS operation, and only of those", async () => {
    const paced: string[] = [];
    const ivs = client({ maxRetries: 1, pace: async (operation) => void paced.push(operation) });
    await setFaults({ rules: [{ operation: "ListStages", errorType: "InternalServerException", times: 1 }] });
    await ivs.listStages();
    await ivs.listPublicKeys();
    expect(paced).toEqual(["ListStages", "ListStages"]);
  });

  it("finds a stage by its tag across every page of ListStages", async () => {
    const ivs = client();
    const request = `request-${Date.now()}`;
    const { stage } = await ivs.createStage({ tags: { "fanout:request": request } });
    expect((await ivs.stagesTagged("fanout:request", request)).map((s) => s.arn)).toEqual([stage.arn]);
    await ivs.deleteStage(stage.arn);
  });

  it("creates stages with the tags it is given", async () => {
    const ivs = client();
    const { stage } = await ivs.createStage({ name: "tagged", tags: { "fanout:broadcast": "main" } });
    expect(stage.tags).toEqual({ "fanout:broadcast": "main" });
    expect(stage.endpoints?.events).toMatch(/^ws:/);
    await ivs.deleteStage(stage.arn);
  });
});
