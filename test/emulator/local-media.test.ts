import { describe, expect, it } from "vitest";
import type { LocalServerMessage } from "../../protocol/local-media.ts";
import { ivsClient, useEmulator } from "../support/emulator.ts";

/** A participant of the local media protocol, keeping every message it receives. */
async function participant(eventsUrl: string, token: string) {
  const ws = new WebSocket(eventsUrl);
  const messages: LocalServerMessage[] = [];
  ws.addEventListener("message", (event) => messages.push(JSON.parse(String(event.data)) as LocalServerMessage));
  await new Promise((resolve) => ws.addEventListener("open", resolve));
  const next = async <T extends LocalServerMessage["type"]>(type: T, after = 0) => {
    for (let i = 0; i < 200; i++) {
      const found = messages.slice(after).find((m) => m.type === type);
      if (found) return found as Extract<LocalServerMessage, { type: T }>;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`no ${type}; got ${messages.map((m) => m.type).join(", ")}`);
  };
  const send = (message: object) => ws.send(JSON.stringify(message));
  send({ type: "join", token });
  const joined = await next("joined");
  return { ws, messages, next, send, joined, id: joined.participantId };
}

describe("the local media hub", () => {
  const ctx = useEmulator();

  async function stageWithTokens() {
    const ivs = ivsClient(ctx.url);
    const { stage } = await ivs.createStage({});
    const token = async (
      userId: string,
      capabilities: ("PUBLISH" | "SUBSCRIBE")[] = ["PUBLISH", "SUBSCRIBE"],
      arn = stage.arn,
    ) => (await ivs.createParticipantToken({ stageArn: arn, userId, capabilities })).participantToken.token!;
    return { ivs, stage, token, events: stage.endpoints!.events! };
  }

  it("tells a joining participant who is there, and the others that it came, published and left", async () => {
    const { token, events } = await stageWithTokens();
    const host = await participant(events, await token("host"));
    expect(host.joined.participants).toEqual([]);
    const viewer = await participant(events, await token("viewer", ["SUBSCRIBE"]));
    expect(viewer.joined.participants).toEqual([
      expect.objectContaining({ participantId: host.id, userId: "host", published: false }),
    ]);
    expect((await host.next("participant_joined")).participant).toMatchObject({
      participantId: viewer.id,
      userId: "viewer",
    });

    host.send({ type: "publish" });
    expect(await viewer.next("participant_published")).toMatchObject({ participantId: host.id, published: true });
    host.ws.close();
    expect(await viewer.next("participant_left")).toMatchObject({ participantId: host.id });
    viewer.ws.close();
  });

  it("relays signalling between two participants of a stage, and nothing to a stranger", async () => {
    const { token, events } = await stageWithTokens();
    const a = await participant(events, await token("a"));
    const b = await participant(events, await token("b"));
    a.send({ type: "signal", to: b.id, data: { sdp: "offer" } });
    expect(await b.next("signal")).toEqual({ type: "signal", from: a.id, data: { sdp: "offer" } });
    b.send({ type: "signal", to: a.id, data: { sdp: "answer" } });
    expect(await a.next("signal")).toEqual({ type: "signal", from: b.id, data: { sdp: "answer" } });

    const elsewhere = await stageWithTokens();
    const stranger = await participant(elsewhere.events, await elsewhere.token("stranger"));
    stranger.send({ type: "signal", to: a.id, data: {} });
    expect(await stranger.next("error")).toMatchObject({ code: "UNKNOWN_PARTICIPANT" });
    for (const p of [a, b, stranger]) p.ws.close();
  });

  it("shows a replica stage's viewers the origin's publisher, and relays their signalling to it", async () => {
    const origin = await stageWithTokens();
    const { stage: edge } = await origin.ivs.createStage({});
    const host = await participant(origin.events, await origin.token("host"));
    host.send({ type: "publish" });
    await host.next("published");

    const viewer = await participant(edge.endpoints!.events!, await origin.token("viewer", ["SUBSCRIBE"], edge.arn));
    const before = viewer.messages.length;
    await origin.ivs.startParticipantReplication({
      sourceStageArn: origin.stage.arn,
      destinationStageArn: edge.arn,
      participantId: host.id,
    });
    const replica = await viewer.next("participant_joined", before);
    expect(replica.participant).toMatchObject({ participantId: host.id, published: true, replicaOf: origin.stage.arn });

    viewer.send({ type: "signal", to: host.id, data: { sdp: "offer from the edge" } });
    expect(await host.next("signal")).toEqual({
      type: "signal",
      from: viewer.id,
      data: { sdp: "offer from the edge" },
    });
    host.send({ type: "signal", to: viewer.id, data: { sdp: "answer from the origin" } });
    expect(await viewer.next("signal")).toMatchObject({ from: host.id, data: { sdp: "answer from the origin" } });

    // A viewer joining later sees the replica straight away.
    const late = await participant(edge.endpoints!.events!, await origin.token("late", ["SUBSCRIBE"], edge.arn));
    expect(late.joined.participants).toEqual(
      expect.arrayContaining([expect.objectContaining({ participantId: host.id, replicaOf: origin.stage.arn })]),
    );

    await origin.ivs.stopParticipantReplication({
      sourceStageArn: origin.stage.arn,
      destinationStageArn: edge.arn,
      participantId: host.id,
    });
    expect(await viewer.next("participant_left")).toMatchObject({ participantId: host.id });
    for (const p of [host, viewer, late]) p.ws.close();
  });
});
