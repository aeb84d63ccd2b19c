import { describe, expect, it } from "vitest";
import type { LocalServerMessage } from "../../protocol/local-media.ts";
import { LocalStage, type LocalStageOptions } from "../../app/src/lib/media/local-stage.ts";
import { control, ivsClient, useEmulator } from "../support/emulator.ts";

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

describe("IVS's connection rules, in the hub and the local transport", () => {
  const ctx = useEmulator();

  async function publisherToken() {
    const ivs = ivsClient(ctx.url);
    const { stage } = await ivs.createStage({});
    const issued = await ivs.createParticipantToken({
      stageArn: stage.arn,
      userId: "host",
      capabilities: ["PUBLISH", "SUBSCRIBE"],
    });
    return { ivs, stage, token: issued.participantToken.token!, participantId: issued.participantToken.participantId! };
  }

  /** The local transport as a page opens it, publishing (no tracks: the hub only signals), recording what it says. */
  function transport(token: string, options: LocalStageOptions = {}) {
    const stage = new LocalStage(
      token,
      {
        stageStreamsToPublish: () => [],
        shouldPublishParticipant: () => true,
        shouldSubscribeToParticipant: () => false,
      },
      { random: () => 0, ...options },
    );
    const log: string[] = [];
    stage.on("stageConnectionStateChanged", (state) => log.push(state));
    stage.on("stageLeft", (reason) => log.push(`left:${reason}`));
    stage.on("stageParticipantPublishStateChanged", (p, state) => p.isLocal && log.push(`publish:${state}`));
    return { stage, log };
  }

  const network = (down: boolean) => control(ctx.url, "network", "PUT", { down });
  const until = async (check: () => boolean, what: string) => {
    for (let i = 0; i < 300; i++) {
      if (check()) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`never: ${what}`);
  };
  async function participantsAtIvs(ivs: ReturnType<typeof ivsClient>, stageArn: string) {
    const { stage } = await ivs.getStage(stageArn);
    const listed = await ivs.listAllParticipants({ stageArn, sessionId: stage.activeSessionId! });
    return listed.filter((p) => p.state === "CONNECTED");
  }

  it("the last connection with a participant's token wins: the earlier one is told TOKEN_REUSED and closed", async () => {
    const { ivs, stage, token, participantId } = await publisherToken();
    const first = await participant(stage.endpoints!.events!, token);
    const second = await participant(stage.endpoints!.events!, token);
    expect(second.id).toBe(participantId);
    expect(await first.next("disconnect")).toMatchObject({ reason: "TOKEN_REUSED" });
    await until(() => first.ws.readyState === WebSocket.CLOSED, "the first connection closes");
    expect(await participantsAtIvs(ivs, stage.arn)).toEqual([expect.objectContaining({ participantId })]);
    second.ws.close();
  });

  it("a transport whose token connected elsewhere leaves with token-reused, and does not connect again", async () => {
    const { stage, token } = await publisherToken();
    const first = transport(token);
    await first.stage.join();
    const other = await participant(stage.endpoints!.events!, token);
    await until(() => first.log.includes("left:token-reused"), "token-reused");
    expect(first.log.slice(-3)).toEqual(["publish:not_published", "left:token-reused", "disconnected"]);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(first.log.at(-1)).toBe("disconnected");
    expect(other.ws.readyState).toBe(WebSocket.OPEN);
    other.ws.close();
  });

  it("errored is transient: the transport reconnects by itself when the network returns, as the same participant, and publishes again", async () => {
    const { ivs, stage, token, participantId } = await publisherToken();
    const { stage: local, log } = transport(token);
    await local.join();
    await until(() => log.includes("publish:published"), "published");
    log.length = 0;
    await network(true);
    await until(() => log.includes("errored") && log.includes("connecting"), "errored, then trying again");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(log).not.toContain("connected");
    expect(log.some((entry) => entry.startsWith("left:"))).toBe(false);
    await network(false);
    await until(() => log.at(-1) === "publish:published", "published again");
    expect(log[0]).toBe("publish:not_published");
    expect(log.filter((entry) => entry === "connected")).toHaveLength(1);
    expect(await participantsAtIvs(ivs, stage.arn)).toEqual([
      expect.objectContaining({ participantId, published: true }),
    ]);
    local.leave();
    expect(log.slice(-2)).toEqual(["left:user-initiated", "disconnected"]);
  });

  it("gives up after the reconnect window, as the SDK does after about 30 s, and leaves with unknown", async () => {
    const { token } = await publisherToken();
    const { stage: local, log } = transport(token, { reconnectWindowMs: 400 });
    await local.join();
    await network(true);
    try {
      await until(() => log.includes("left:unknown"), "given up");
      expect(log.at(-1)).toBe("disconnected");
    } finally {
      await network(false);
    }
  });

  it("a deleted stage or a disconnected participant ends the connection with that reason", async () => {
    const deleted = await publisherToken();
    const a = transport(deleted.token);
    await a.stage.join();
    await deleted.ivs.deleteStage(deleted.stage.arn);
    await until(() => a.log.includes("left:stage-deleted"), "stage-deleted");

    const kicked = await publisherToken();
    const b = transport(kicked.token);
    await b.stage.join();
    await kicked.ivs.disconnectParticipant({ stageArn: kicked.stage.arn, participantId: kicked.participantId });
    await until(() => b.log.includes("left:participant-disconnected"), "participant-disconnected");
    expect(b.log.at(-1)).toBe("disconnected");
  });
});
