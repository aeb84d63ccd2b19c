import { describe, expect, it } from "vitest";
import { RECOVERY_TIMEOUT_MS, StudioSession, type StudioApi } from "../../app/src/lib/studio/session.ts";
import { FakeSocket, ManualClock, fakeToken, settle, stageFactory } from "../support/fake-stage.ts";

const ORIGIN = "arn:aws:ivs:us-east-1:123456789012:stage/origin";
const EDGE = "arn:aws:ivs:us-east-1:123456789012:stage/edge1";
const MINUTE = 60_000;

function studio(overrides: Partial<StudioApi> = {}) {
  const clock = new ManualClock();
  const token = (jti: string, stage: string, minutes = 240) => {
    const iat = Math.floor(clock.now() / 1000);
    return fakeToken({ jti, resource: stage, iat, exp: iat + minutes * 60 });
  };
  const calls: string[] = [];
  const api: StudioApi = {
    ticket: async () => (calls.push("ticket"), "ticket-1"),
    publisherToken: async (participantId, encoder) => {
      calls.push(["publisherToken", participantId, encoder === "obs" ? "obs" : undefined].filter(Boolean).join(" "));
      const id = participantId ?? (encoder === "obs" ? "obs-1" : "pub-1");
      return { token: token(id, ORIGIN), participantId: id, stageArn: ORIGIN, whipEndpoint: "http://whip" };
    },
    publisherTokens: async () => (calls.push("publisherTokens"), []),
    stageToken: async (stageArn, participantId) => {
      calls.push(`stageToken ${participantId ?? ""}`.trim());
      const id = participantId ?? "direct-1";
      return { token: token(id, stageArn), participantId: id, stageArn };
    },
    endBroadcast: async () => void calls.push("endBroadcast"),
    ...overrides,
  };
  const stages = stageFactory();
  const sockets: FakeSocket[] = [];
  const session = new StudioSession({
    api,
    openStage: stages.open,
    connectBroadcaster: () => {
      const socket = new FakeSocket();
      sockets.push(socket);
      return socket;
    },
    tracks: () => [],
    clock,
    random: () => 0.5,
  });
  return { session, api, calls, stages, sockets, clock, token };
}

describe("the studio's stage bookkeeping", () => {
  it("goes live: the admin key is checked first, then the origin is joined as a publisher", async () => {
    const { session, calls, stages, sockets } = studio();
    await session.start();
    expect(calls.slice(0, 2)).toEqual(["ticket", "publisherToken"]);
    expect(stages.stages).toHaveLength(1);
    expect(stages.stages[0]!.joined).toBe(true);
    expect(stages.stages[0]!.strategy.shouldPublishParticipant({} as never)).toBe(true);
    expect(stages.stages[0]!.strategy.shouldSubscribeToParticipant({} as never)).toBe(false);
    expect(sockets).toHaveLength(1);
    expect(session.state.status).toBe("live");
    expect(session.state.stages).toMatchObject([{ stageArn: ORIGIN, role: "origin", participantId: "pub-1" }]);
  });

  it("a wrong admin key shows the error and starts nothing", async () => {
    const { session, calls, stages, sockets } = studio({
      ticket: async () => {
        throw new Error("The admin key is not valid.");
      },
    });
    await session.start();
    expect(session.state).toMatchObject({ status: "error", error: "The admin key is not valid.", stages: [] });
    expect(calls).toEqual([]);
    expect(stages.stages).toHaveLength(0);
    expect(sockets).toHaveLength(0);
  });

  it("opens the broadcaster socket with its ticket in the first message, never in the URL, and waits for ready", async () => {
    const { session, sockets } = studio();
    await session.start();
    sockets[0]!.open();
    expect(sockets[0]!.json()).toEqual([{ type: "auth", ticket: "ticket-1" }]);
    expect(session.state.socket).not.toBe("connected");
    sockets[0]!.receive({ type: "ready" });
    expect(session.state.socket).toBe("connected");
  });

  it("reports each stage's publish state on the broadcaster socket, holding it until the socket is ready", async () => {
    const { session, stages, sockets } = studio();
    await session.start();
    const origin = stages.stages[0]!;
    const self = { id: "pub-1", userId: "host", isLocal: true, isPublishing: true };
    origin.emit("stageParticipantPublishStateChanged", self, "published");
    expect(sockets[0]!.sent).toEqual([]);
    sockets[0]!.open();
    expect(sockets[0]!.json()).toEqual([{ type: "auth", ticket: "ticket-1" }]);
    sockets[0]!.receive({ type: "ready" });
    expect(sockets[0]!.json().slice(1)).toEqual([
      { type: "publish_state", data: { stageArn: ORIGIN, state: "publishing", participantId: "pub-1" } },
    ]);
    origin.emit("stageParticipantPublishStateChanged", self, "errored");
    expect(sockets[0]!.json().at(-1)).toMatchObject({ data: { state: "failed" } });
    expect(session.state.stages[0]!.publishState).toBe("errored");
  });

  it("joins a direct-fed stage on stage_created and leaves it on stage_deleted; a replica stage is not joined", async () => {
    const { session, stages, sockets, token } = studio();
    await session.start();
    const socket = sockets[0]!;
    socket.open();
    socket.receive({ type: "stage_created", data: { stageArn: EDGE, feed: "replica", timestamp: "t" } });
    await settle();
    expect(stages.stages).toHaveLength(1);

    socket.receive({
      type: "stage_created",
      data: { stageArn: EDGE, feed: "direct", token: token("d-1", EDGE), participantId: "d-1", timestamp: "t" },
    });
    await settle();
    expect(stages.stages).toHaveLength(2);
    expect(stages.stages[1]!.joined).toBe(true);
    expect(session.state.stages.map((s) => [s.stageArn, s.role])).toEqual([
      [ORIGIN, "origin"],
      [EDGE, "direct"],
    ]);

    socket.receive({ type: "stage_deleted", data: { stageArn: EDGE, timestamp: "t" } });
    await settle();
    expect(stages.stages[1]!.left).toBe(true);
    expect(stages.stages[0]!.left).toBe(false);
    expect(session.state.stages.map((s) => s.stageArn)).toEqual([ORIGIN]);
  });

  it("joins the direct-fed stages that already exist when it goes live", async () => {
    const { session, stages, token } = studio({
      publisherTokens: async () => [
        { stageArn: ORIGIN, token: token("x", ORIGIN), participantId: "x", feed: "replica" },
        { stageArn: EDGE, token: token("d-9", EDGE), participantId: "d-9", feed: "direct" },
      ],
    });
    await session.start();
    expect(stages.stages.map((s) => s.token)).toEqual([expect.any(String), token("d-9", EDGE)]);
    expect(session.state.stages.map((s) => s.role)).toEqual(["origin", "direct"]);
  });

  it("renews a token five minutes before it expires, exchanging it in place for the same participant", async () => {
    const { session, calls, stages, clock } = studio();
    await session.start();
    expect(clock.pending()).toContain(235 * MINUTE);
    await clock.advance(235 * MINUTE - 1);
    expect(calls).not.toContain("publisherToken pub-1");
    await clock.advance(1);
    expect(calls).toContain("publisherToken pub-1");
    expect(stages.stages).toHaveLength(1);
    expect(stages.stages[0]!.calls).toEqual(["join", "exchangeToken"]);
    expect(session.state.stages[0]!.expiresAt).toBe(clock.now() + 240 * MINUTE);
  });

  it("rejoins when the renewed token names a new participant, joining the new connection before leaving the old", async () => {
    let n = 0;
    const { session, stages, clock, token } = studio({
      publisherToken: async () => {
        const id = `pub-${++n}`;
        return { token: token(id, ORIGIN), participantId: id, stageArn: ORIGIN, whipEndpoint: "http://whip" };
      },
    });
    await session.start();
    await clock.advance(235 * MINUTE);
    expect(stages.order).toEqual(["join 0", "join 1", "leave 0"]);
    expect(session.state.stages).toMatchObject([{ stageArn: ORIGIN, participantId: "pub-2" }]);
  });

  it("retries a failed renewal with backoff", async () => {
    let fail = true;
    const { session, calls, clock, stages } = studio();
    await session.start();
    const original = stages.stages[0]!.exchangeToken.bind(stages.stages[0]!);
    stages.stages[0]!.exchangeToken = async (t) => {
      if (fail) throw new Error("network");
      return original(t);
    };
    await clock.advance(235 * MINUTE);
    expect(calls.filter((c) => c === "publisherToken pub-1")).toHaveLength(1);
    expect(session.state.log[0]!.text).toMatch(/renewal .* failed/);
    fail = false;
    await clock.advance(1_000);
    expect(calls.filter((c) => c === "publisherToken pub-1")).toHaveLength(2);
    expect(stages.stages[0]!.exchanged).toHaveLength(1);
  });

  it("reconnects the broadcaster socket with backoff when it drops, with a new ticket", async () => {
    const { session, calls, sockets, clock } = studio();
    await session.start();
    sockets[0]!.open();
    sockets[0]!.drop();
    expect(session.state.socket).toBe("reconnecting");
    // Attempt 0: between 250 and 500 ms (random 0.5 → 375 ms).
    await clock.advance(374);
    expect(sockets).toHaveLength(1);
    await clock.advance(1);
    expect(sockets).toHaveLength(2);
    expect(calls.filter((c) => c === "ticket")).toHaveLength(2);
    sockets[1]!.drop();
    await clock.advance(749);
    expect(sockets).toHaveLength(2);
    await clock.advance(1);
    expect(sockets).toHaveLength(3);
    sockets[2]!.open();
    sockets[2]!.receive({ type: "ready" });
    expect(session.state.socket).toBe("connected");
  });

  it("stops reconnecting the broadcaster socket and says why when the admin key is refused (401)", async () => {
    let refused = false;
    const { session, calls, sockets, clock } = studio({
      ticket: async () => {
        calls.push("ticket");
        if (refused) throw Object.assign(new Error("A valid key is required."), { status: 401 });
        return "ticket-1";
      },
    });
    await session.start();
    sockets[0]!.open();
    refused = true;
    sockets[0]!.drop();
    await clock.advance(60_000);
    expect(calls.filter((c) => c === "ticket")).toHaveLength(2);
    expect(sockets).toHaveLength(1);
    expect(session.state).toMatchObject({ socket: "closed", error: expect.stringMatching(/admin key was refused/) });
    expect(session.state.log.some((entry) => /admin key was refused/.test(entry.text))).toBe(true);
  });

  it("stop ends the broadcast, leaves every stage and closes the socket without reconnecting", async () => {
    const { session, calls, stages, sockets, clock } = studio();
    await session.start();
    sockets[0]!.open();
    await session.stop();
    expect(calls).toContain("endBroadcast");
    expect(stages.stages.every((s) => s.left)).toBe(true);
    expect(sockets[0]!.closedWith).toBe(1000);
    expect(session.state.status).toBe("ended");
    await clock.advance(60_000);
    expect(sockets).toHaveLength(1);
  });

  it("camera and screen changes refresh every stage's strategy", async () => {
    const { session, stages, sockets, token } = studio();
    await session.start();
    sockets[0]!.open();
    sockets[0]!.receive({
      type: "stage_created",
      data: { stageArn: EDGE, feed: "direct", token: token("d-1", EDGE), participantId: "d-1", timestamp: "t" },
    });
    await settle();
    session.refresh();
    expect(stages.stages.map((s) => s.calls.at(-1))).toEqual(["refreshStrategy", "refreshStrategy"]);
  });
});

describe("the studio and IVS's connection lifecycle (errored is transient, the last connection wins)", () => {
  const self = { id: "pub-1", userId: "host", isLocal: true, isPublishing: true };

  async function live() {
    const env = studio();
    await env.session.start();
    env.sockets[0]!.open();
    env.sockets[0]!.receive({ type: "ready" });
    const origin = env.stages.stages[0]!;
    origin.emit("stageParticipantPublishStateChanged", self, "published");
    return { ...env, origin };
  }
  const reports = (socket: FakeSocket) => socket.json().filter((m) => m.type === "publish_state");

  it("leaves a transient errored to the SDK: no renewal, no second connection, and it carries on when it reconnects", async () => {
    const { session, calls, stages, origin, clock } = await live();
    origin.emit("stageConnectionStateChanged", "errored");
    origin.emit("stageParticipantPublishStateChanged", self, "not_published");
    origin.emit("stageConnectionStateChanged", "connecting");
    await clock.advance(20_000);
    expect(stages.stages).toHaveLength(1);
    expect(calls.filter((c) => /^publisherToken( |$)/.test(c))).toEqual(["publisherToken"]);
    expect(session.state.stages[0]).toMatchObject({ connection: "connecting", publishState: "not_published" });

    origin.emit("stageConnectionStateChanged", "connected");
    origin.emit("stageParticipantPublishStateChanged", self, "published");
    await clock.advance(60_000);
    expect(stages.stages).toHaveLength(1);
    expect(origin.left).toBe(false);
    expect(session.state).toMatchObject({
      status: "live",
      stages: [{ connection: "connected", publishState: "published" }],
    });
    expect(session.state.log.map((l) => l.text)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/interrupted; reconnecting/),
        expect.stringMatching(/^Reconnected/),
      ]),
    );
  });

  it("a renewal due while the SDK reconnects waits for it instead of opening a second connection", async () => {
    const { calls, stages, origin, clock } = await live();
    await clock.advance(235 * MINUTE - 1_000);
    origin.emit("stageConnectionStateChanged", "errored");
    await clock.advance(10_000);
    expect(calls).not.toContain("publisherToken pub-1");
    origin.emit("stageConnectionStateChanged", "connected");
    await clock.advance(5_000);
    expect(calls).toContain("publisherToken pub-1");
    expect(stages.stages).toHaveLength(1);
    expect(origin.calls).toEqual(["join", "exchangeToken"]);
  });

  it("an errored connection that neither recovers nor leaves is left first, then joined afresh", async () => {
    const { stages, origin, clock } = await live();
    origin.emit("stageConnectionStateChanged", "errored");
    await clock.advance(RECOVERY_TIMEOUT_MS - 1);
    expect(stages.stages).toHaveLength(1);
    await clock.advance(1);
    expect(stages.order).toEqual(["join 0", "leave 0", "join 1"]);
  });

  it("a token reused elsewhere is not fought: this page stops publishing and says why, and the broadcast goes on", async () => {
    const { session, calls, stages, sockets, origin, clock } = await live();
    origin.emit("stageParticipantPublishStateChanged", self, "not_published");
    origin.emit("stageLeft", "token-reused");
    origin.emit("stageConnectionStateChanged", "disconnected");
    await clock.advance(10 * MINUTE);
    expect(stages.stages).toHaveLength(1);
    expect(calls).not.toContain("endBroadcast");
    expect(calls.filter((c) => /^publisherToken( |$)/.test(c))).toHaveLength(1);
    expect(session.state).toMatchObject({ status: "error", error: expect.stringMatching(/Another studio took over/) });
    expect(session.live).toBe(false);
    expect(sockets[0]!.closedWith).toBe(1000);
    // It said it stopped (the connection that took over reports "publishing" once it publishes), and nothing more.
    expect(reports(sockets[0]!).map((m) => m.data?.state)).toEqual(["publishing", "stopped"]);
  });

  it("a participant disconnected by the server stops the studio with the reason; it does not rejoin", async () => {
    const { session, stages, origin, clock } = await live();
    origin.emit("stageLeft", "participant-disconnected");
    await clock.advance(10 * MINUTE);
    expect(stages.stages).toHaveLength(1);
    expect(session.state).toMatchObject({ status: "error", error: expect.stringMatching(/server disconnected/) });
  });

  it("an unknown end (the SDK gave up) or a refused exchange joins again with a fresh token, and says it stopped publishing meanwhile", async () => {
    for (const reason of ["unknown", "failed-exchange"] as const) {
      const { session, calls, stages, sockets, origin } = await live();
      origin.emit("stageLeft", reason);
      await settle();
      expect(calls).toContain("publisherToken pub-1");
      expect(stages.stages).toHaveLength(2);
      expect(stages.stages[1]!.joined).toBe(true);
      expect(reports(sockets[0]!).map((m) => m.data?.state)).toEqual(["publishing", "stopped"]);
      expect(session.state.stages).toMatchObject([{ participantId: "pub-1", connection: "connected" }]);
    }
  });

  it("a connection that ends without a reason is treated as an unknown end", async () => {
    const { stages, origin } = await live();
    origin.emit("stageConnectionStateChanged", "disconnected");
    await settle();
    expect(stages.stages).toHaveLength(2);
  });

  it("a deleted origin asks the server for the broadcast's current one; a deleted direct-fed stage is left", async () => {
    const { session, calls, stages, sockets, origin, token } = await live();
    sockets[0]!.receive({
      type: "stage_created",
      data: { stageArn: EDGE, feed: "direct", token: token("d-1", EDGE), participantId: "d-1", timestamp: "t" },
    });
    await settle();
    stages.stages[1]!.emit("stageLeft", "stage-deleted");
    await settle();
    expect(stages.stages[1]!.left).toBe(true);
    expect(session.state.stages.map((s) => s.stageArn)).toEqual([ORIGIN]);

    origin.emit("stageLeft", "stage-deleted");
    await settle();
    expect(calls).toContain("publisherToken pub-1");
    expect(stages.stages).toHaveLength(3);
  });

  it("a failed rejoin is retried with backoff, and the stage is not lost", async () => {
    const { session, stages, origin, clock } = await live();
    stages.failNextJoins(1);
    origin.emit("stageLeft", "unknown");
    await settle();
    expect(stages.order).toEqual(["join 0", "join 1", "leave 1"]);
    expect(session.state.log[0]!.text).toMatch(/failed .*Could not connect/);
    await clock.advance(1_000);
    expect(stages.order.slice(3)).toEqual(["join 2"]);
    expect(session.state.stages).toMatchObject([{ stageArn: ORIGIN, connection: "connected" }]);
  });
});

describe("the studio with OBS as the publisher", () => {
  it("gives OBS a participant of its own and joins no stage: the page never kicks OBS, nor OBS the page", async () => {
    const { session, calls, stages, sockets } = studio();
    await session.startWithObs();
    expect(calls).toEqual(["ticket", "publisherToken obs"]);
    expect(stages.stages).toHaveLength(0);
    expect(sockets).toHaveLength(1);
    expect(session.state).toMatchObject({
      status: "live",
      encoder: "obs",
      obs: { url: "http://whip", participantId: "obs-1", expiresAt: expect.any(Number) },
    });
  });

  it("renews OBS's token for the same participant, so the replicas keep following it", async () => {
    const { session, calls } = studio();
    await session.startWithObs();
    await session.renewObsToken();
    expect(calls.at(-1)).toBe("publisherToken obs-1 obs");
    expect(session.state.obs).toMatchObject({ participantId: "obs-1" });
  });

  it("does not join a direct-fed stage (OBS feeds one stage) and says why", async () => {
    const { session, stages, sockets, token } = studio();
    await session.startWithObs();
    sockets[0]!.open();
    sockets[0]!.receive({
      type: "stage_created",
      data: { stageArn: EDGE, feed: "direct", token: token("d-1", EDGE), participantId: "d-1", timestamp: "t" },
    });
    await settle();
    expect(stages.stages).toHaveLength(0);
    expect(session.state.log[0]!.text).toMatch(/OBS cannot send/);
  });

  it("going live from the page afterwards is the page's own participant again", async () => {
    const { session, calls, stages } = studio();
    await session.startWithObs();
    await session.stop();
    await session.start();
    expect(calls.filter((c) => /^publisherToken( |$)/.test(c))).toEqual(["publisherToken obs", "publisherToken"]);
    expect(stages.stages).toHaveLength(1);
    expect(session.state).toMatchObject({ encoder: "studio", obs: undefined });
  });
});
