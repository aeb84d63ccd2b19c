import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { api, asViewer, call, data, joinAs, newBroadcastId, publishing, waitFor } from "./support.ts";

type Token = { token: string; participantId: string; stageArn: string; expiresAt: string };
type Stats = { totalViewers: number };

/** Token renewal before expiry (docs/design.md, "Tokens"): the same participant, so clients swap it in with exchangeToken. */
describe("token renewal", () => {
  it("a viewer's renewed token names the same participant and stage, and counts no new viewer", async () => {
    const b = newBroadcastId();
    await call(api(b, "/token/publisher"), { body: { userId: "host" } });
    const first = await joinAs(b, "ann");
    const renewed = data(await call<Token>(api(b, "/token/viewer/renew"), { body: asViewer(first), key: null }));
    expect(renewed).toMatchObject({ participantId: first.participantId, stageArn: first.stageArn });
    expect(renewed.token).not.toBe(first.token);
    expect(decodeJwt(renewed.token)).toMatchObject({ jti: first.participantId, resource: first.stageArn });
    await waitFor(async () => expect(data(await call<Stats>(api(b, "/stats"))).totalViewers).toBe(1));
    // The renewed token proves the participant from now on: it renews in turn.
    const again = await call(api(b, "/token/viewer/renew"), {
      body: asViewer({ ...first, token: renewed.token }),
      key: null,
    });
    expect(data(again)).toMatchObject({ participantId: first.participantId });
  });

  it("refuses to sign a participant id for anyone who does not hold that participant's token", async () => {
    const b = newBroadcastId();
    await call(api(b, "/token/publisher"), { body: { userId: "host" } });
    const ann = await joinAs(b, "ann");
    const bob = await joinAs(b, "bob");
    const attempts = [
      // Ann's participant with Bob's token.
      { ...asViewer(ann), token: bob.token },
      // Ann's participant and token, claimed by Bob's user id.
      { ...asViewer(ann), userId: "bob" },
      // A participant the stage never admitted, with a real token.
      { ...asViewer(ann), participantId: "never-admitted" },
      // A token Fanout never issued.
      { ...asViewer(ann), token: "eyJhbGciOiJFUzM4NCJ9.e30.forged" },
    ];
    for (const body of attempts) {
      const answer = await call(api(b, "/token/viewer/renew"), { body, key: null });
      expect(answer.status, JSON.stringify(body)).toBe(403);
      expect(answer.body).toMatchObject({ success: false, error: { code: "FORBIDDEN" } });
    }
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

  it("a renewal while publishing keeps the broadcast live: the exchanged token does not reset the publish state", async () => {
    const b = newBroadcastId();
    const first = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const publisher = await publishing(b, first);
    const live = async () => data(await call<{ isPublisherLive: boolean }>(api(b, "/stats"))).isPublisherLive;
    expect(await live()).toBe(true);
    await call(api(b, "/token/publisher"), { body: { userId: "host", participantId: first.participantId } });
    expect(await live()).toBe(true);
    publisher.close();
  });
});
