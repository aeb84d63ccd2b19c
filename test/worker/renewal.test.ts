import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { api, call, data, newBroadcastId, waitFor } from "./support.ts";

type Token = { token: string; participantId: string; stageArn: string; expiresAt: string };
type Stats = { totalViewers: number };

/** Token renewal before expiry (docs/design.md, "Tokens"): the same participant, so clients swap it in with exchangeToken. */
describe("token renewal", () => {
  it("a viewer's renewed token names the same participant and stage, and counts no new viewer", async () => {
    const b = newBroadcastId();
    await call(api(b, "/token/publisher"), { body: { userId: "host" } });
    const first = data(await call<Token>(api(b, "/token/viewer"), { body: { userId: "ann" }, key: null }));
    const renewed = data(
      await call<Token>(api(b, "/token/viewer/renew"), {
        body: { userId: "ann", stageArn: first.stageArn, participantId: first.participantId },
        key: null,
      }),
    );
    expect(renewed).toMatchObject({ participantId: first.participantId, stageArn: first.stageArn });
    expect(renewed.token).not.toBe(first.token);
    expect(decodeJwt(renewed.token)).toMatchObject({ jti: first.participantId, resource: first.stageArn });
    await waitFor(async () => expect(data(await call<Stats>(api(b, "/stats"))).totalViewers).toBe(1));
  });

  it("refuses to sign another viewer's participant id, or one the stage does not hold", async () => {
    const b = newBroadcastId();
    await call(api(b, "/token/publisher"), { body: { userId: "host" } });
    const ann = data(await call<Token>(api(b, "/token/viewer"), { body: { userId: "ann" }, key: null }));
    const asBob = await call(api(b, "/token/viewer/renew"), {
      body: { userId: "bob", stageArn: ann.stageArn, participantId: ann.participantId },
      key: null,
    });
    expect(asBob.status).toBe(404);
    const stranger = await call(api(b, "/token/viewer/renew"), {
      body: { userId: "ann", stageArn: ann.stageArn, participantId: "never-admitted" },
      key: null,
    });
    expect(stranger.status).toBe(404);
  });

  it("the broadcaster's renewed token keeps its participant; a stranger's id gets a new one", async () => {
    const b = newBroadcastId();
    const first = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const renewed = data(
      await call<Token>(api(b, "/token/publisher"), {
        body: { userId: "host", participantId: first.participantId },
      }),
    );
    expect(renewed).toMatchObject({ participantId: first.participantId, stageArn: first.stageArn });
    const other = data(
      await call<Token>(api(b, "/token/publisher"), { body: { userId: "host", participantId: "made-up-id" } }),
    );
    expect(other.participantId).not.toBe("made-up-id");
    expect(other.participantId).not.toBe(first.participantId);
  });
});
