import { afterEach, describe, expect, it } from "vitest";
import { api, call, data, emulator, newBroadcastId } from "../support.ts";

/**
 * With API tokens (no token key), every token is a CreateParticipantToken
 * call, shared by the whole account at 50 a second. When IVS refuses it, every
 * token route answers as documented: 503 with Retry-After when throttled or
 * over quota, 502 for any other refusal; never a 500. Performed with the
 * emulator's fault injection.
 */

afterEach(() => emulator.clearFaults());

type Grant = { token: string; participantId: string; stageArn: string };

const refusals = [
  { errorType: "ThrottlingException", status: 503, retryAfter: "2" },
  { errorType: "ServiceQuotaExceededException", status: 503, retryAfter: "30" },
  { errorType: "AccessDeniedException", status: 502, retryAfter: null },
] as const;

/** Every route that hands out a token, called as its client would. */
const routes: {
  name: string;
  request: (b: string, origin: Grant, viewer: Grant) => Promise<Awaited<ReturnType<typeof call>>>;
}[] = [
  { name: "POST /token/viewer", request: (b) => call(api(b, "/token/viewer"), { body: { userId: "v2" }, key: null }) },
  {
    name: "POST /token/viewer/renew",
    request: (b, _o, v) =>
      call(api(b, "/token/viewer/renew"), {
        body: { userId: "v1", stageArn: v.stageArn, participantId: v.participantId, token: v.token },
        key: null,
      }),
  },
  {
    name: "POST /token/publisher",
    request: (b, o) => call(api(b, "/token/publisher"), { body: { userId: "host", participantId: o.participantId } }),
  },
  { name: "POST /token/publisher-all", request: (b) => call(api(b, "/token/publisher-all"), { body: {} }) },
  { name: "GET /broadcaster/stages", request: (b) => call(api(b, "/broadcaster/stages")) },
  {
    name: "POST /broadcaster/stage-token",
    request: (b, o) => call(api(b, "/broadcaster/stage-token"), { body: { stageArn: o.stageArn } }),
  },
];

describe("IVS refusing CreateParticipantToken", () => {
  it("is what every token call makes when no token key is configured", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    await emulator.faults({ rules: [{ operation: "CreateParticipantToken", errorType: "AccessDeniedException" }] });
    expect((await call(api(b, "/token/viewer"), { body: { userId: "v" }, key: null })).status).toBe(502);
  });

  it("a renewal is proven before IVS is asked: a stranger costs no CreateParticipantToken", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const viewer = data(await call<Grant>(api(b, "/token/viewer"), { body: { userId: "v1" }, key: null }));
    // Were IVS asked, this would be a 502.
    await emulator.faults({ rules: [{ operation: "CreateParticipantToken", errorType: "AccessDeniedException" }] });
    const stranger = await call(api(b, "/token/viewer/renew"), {
      body: { userId: "v1", stageArn: viewer.stageArn, participantId: viewer.participantId, token: "not-its-token" },
      key: null,
    });
    expect(stranger.status).toBe(403);
    await emulator.clearFaults();
    const renewed = data(
      await call<Grant>(api(b, "/token/viewer/renew"), {
        body: { userId: "v1", stageArn: viewer.stageArn, participantId: viewer.participantId, token: viewer.token },
        key: null,
      }),
    );
    // API tokens: IVS names a new participant; the client rejoins with it.
    expect(renewed.participantId).not.toBe(viewer.participantId);
  });

  for (const route of routes) {
    it.each(refusals)(
      `${route.name}: a $errorType answers $status TOKEN_GENERATION_FAILED, never 500`,
      async ({ errorType, status, retryAfter }) => {
        const b = newBroadcastId();
        const origin = data(await call<Grant>(api(b, "/token/publisher"), { body: { userId: "host" } }));
        const viewer = data(await call<Grant>(api(b, "/token/viewer"), { body: { userId: "v1" }, key: null }));
        await emulator.faults({ rules: [{ operation: "CreateParticipantToken", errorType }] });
        const answer = await route.request(b, origin, viewer);
        expect(answer.status).toBe(status);
        expect(answer.body).toMatchObject({ success: false, error: { code: "TOKEN_GENERATION_FAILED" } });
        expect(answer.headers.get("Retry-After")).toBe(retryAfter);
      },
    );
  }
});
