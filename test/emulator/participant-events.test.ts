import { describe, expect, it } from "vitest";
import { join, signedCall, useEmulator } from "../support/emulator.ts";

/** As IVS: `published` means "ever published in the session"; ListParticipantEvents says what happened, in order. */
describe("participants' publishing, as IVS reports it", () => {
  const ctx = useEmulator();

  it("a participant that published and stopped stays `published`, and its events say it stopped", async () => {
    const { json: created } = await signedCall(ctx.url, "CreateStage", {});
    const stage = created.stage as { arn: string; endpoints: { events: string } };
    const { json: minted } = await signedCall(ctx.url, "CreateParticipantToken", { stageArn: stage.arn });
    const token = minted.participantToken as { token: string; participantId: string };
    const participant = join(stage.endpoints.events, token.token);
    const joined = await participant.joined;
    expect(joined.type).toBe("joined");
    await participant.publish();
    participant.ws.send(JSON.stringify({ type: "unpublish" }));
    await new Promise((resolve) => setTimeout(resolve, 100));

    const sessionId = (
      (await signedCall(ctx.url, "GetStage", { arn: stage.arn })).json.stage as { activeSessionId: string }
    ).activeSessionId;
    const { json: listed } = await signedCall(ctx.url, "ListParticipants", {
      stageArn: stage.arn,
      sessionId,
      filterByPublished: true,
    });
    expect(listed.participants).toEqual([
      expect.objectContaining({ participantId: token.participantId, published: true }),
    ]);
    const { json: events } = await signedCall(ctx.url, "ListParticipantEvents", {
      stageArn: stage.arn,
      sessionId,
      participantId: token.participantId,
    });
    expect((events.events as { name: string }[]).map((e) => e.name)).toEqual([
      "JOINED",
      "PUBLISH_STARTED",
      "PUBLISH_STOPPED",
    ]);
    participant.ws.close();
  });
});
