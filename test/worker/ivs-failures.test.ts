import { afterEach, describe, expect, it } from "vitest";
import { api, call, data, emulator, newBroadcastId } from "./support.ts";

/**
 * What the API answers when IVS refuses, performed with the emulator's fault
 * injection: throttling and a used-up quota are 503 with Retry-After (come
 * back later), any other refusal 502, never a 500. A conflict is 409 CONFLICT.
 */

afterEach(() => emulator.clearFaults());

const refusals = [
  { errorType: "ThrottlingException", status: 503, retryAfter: "2" },
  { errorType: "ServiceQuotaExceededException", status: 503, retryAfter: "30" },
  { errorType: "AccessDeniedException", status: 502, retryAfter: null },
] as const;

describe("IVS refusing to create the origin", () => {
  it.each(refusals)(
    "a $errorType behind POST /token/publisher answers $status TOKEN_GENERATION_FAILED, never 500",
    async ({ errorType, status, retryAfter }) => {
      const b = newBroadcastId();
      await emulator.faults({ rules: [{ operation: "CreateStage", errorType }] });
      const answer = await call(api(b, "/token/publisher"), { body: { userId: "host" } });
      expect(answer.status).toBe(status);
      expect(answer.body).toMatchObject({ success: false, error: { code: "TOKEN_GENERATION_FAILED" } });
      expect(answer.headers.get("Retry-After")).toBe(retryAfter);
      expect(JSON.stringify(answer.body)).toContain(errorType);
    },
  );

  it("a refused stage is not left behind: the next publisher token, once IVS accepts, starts the broadcast", async () => {
    const b = newBroadcastId();
    await emulator.faults({ rules: [{ operation: "CreateStage", errorType: "AccessDeniedException", times: 1 }] });
    expect((await call(api(b, "/token/publisher"), { body: { userId: "host" } })).status).toBe(502);
    const grant = data(await call<{ stageArn: string }>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    expect(data(await call<{ stages: { stageArn: string }[] }>(api(b, "/stage/list"))).stages).toEqual([
      expect.objectContaining({ stageArn: grant.stageArn }),
    ]);
  });
});

describe("conflicts", () => {
  it("deleting the origin while live is 409 CONFLICT", async () => {
    const b = newBroadcastId();
    const origin = data(await call<{ stageArn: string }>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const answer = await call(api(b, `/stage/${encodeURIComponent(origin.stageArn)}`), { method: "DELETE" });
    expect(answer.status).toBe(409);
    expect(answer.body).toMatchObject({ success: false, error: { code: "CONFLICT" } });
  });

  it("draining the origin, or replicating into it, is 409 CONFLICT", async () => {
    const b = newBroadcastId();
    const { stageArn } = data(
      await call<{ stageArn: string }>(api(b, "/token/publisher"), { body: { userId: "host" } }),
    );
    const drain = await call(api(b, `/stage/${encodeURIComponent(stageArn)}`), {
      method: "PUT",
      body: { state: "draining" },
    });
    const replicate = await call(api(b, "/stage/replication/start"), { body: { stageArn } });
    for (const answer of [drain, replicate]) {
      expect(answer.status).toBe(409);
      expect(answer.body).toMatchObject({ success: false, error: { code: "CONFLICT" } });
    }
  });
});
