import { describe, expect, it } from "vitest";
import {
  RECOVERY_TIMEOUT_MS,
  ViewerSession,
  type ViewerApi,
  type ViewerGrant,
} from "../../app/src/lib/viewer/session.ts";
import { FakeSocket, ManualClock, fakeToken, settle, stageFactory } from "../support/fake-stage.ts";

const A = "arn:aws:ivs:us-east-1:123456789012:stage/a";
const B = "arn:aws:ivs:us-east-1:123456789012:stage/b";
const MINUTE = 60_000;
const video = { kind: "video" } as MediaStreamTrack;
const audio = { kind: "audio" } as MediaStreamTrack;
const host = { id: "pub", userId: "host", isLocal: false, isPublishing: true };

function viewer(overrides: Partial<ViewerApi> = {}) {
  const clock = new ManualClock();
  let n = 0;
  const grant = (stageArn: string, participantId = `v-${++n}`): ViewerGrant => {
    const iat = Math.floor(clock.now() / 1000);
    return {
      token: fakeToken({ jti: participantId, resource: stageArn, iat, exp: iat + 60 * 60 }),
      participantId,
      stageArn,
      currentViewers: 1,
    };
  };
  const calls: string[] = [];
  /** The tokens renewals were proven with. */
  const tokens: string[] = [];
  const api: ViewerApi = {
    join: async (stageArn) => (calls.push(`join ${stageArn ?? ""}`.trim()), grant(stageArn ?? A)),
    renew: async (stageArn, participantId, token) => (
      calls.push(`renew ${participantId}`),
      tokens.push(token),
      grant(stageArn, participantId)
    ),
    ...overrides,
  };
  const stages = stageFactory();
  const sockets: FakeSocket[] = [];
  let silent = false;
  const session = new ViewerSession({
    api,
    openStage: stages.open,
    connectViewer: () => {
      const socket = new FakeSocket();
      sockets.push(socket);
      queueMicrotask(() => socket.open());
      // The runtime answers the viewer's pings (unless a test silences it).
      const send = socket.send.bind(socket);
      socket.send = (data) => {
        send(data);
        if (data === "ping" && !silent) queueMicrotask(() => socket.receive("pong"));
      };
      return socket;
    },
    clock,
    random: () => 0.5,
  });
  return { session, calls, tokens, stages, sockets, clock, grant, silence: () => (silent = true) };
}

async function playing(v: ReturnType<typeof viewer>, index = 0) {
  await settle();
  v.stages.stages[index]!.emit("stageParticipantStreamsAdded", host, [video, audio]);
}

describe("the viewer's connection", () => {
  it("joins by itself, subscribes to the publisher only, and is live once video arrives", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    const strategy = v.stages.stages[0]!.strategy;
    expect(strategy.shouldPublishParticipant(host)).toBe(false);
    expect(strategy.shouldSubscribeToParticipant(host)).toBe(true);
    expect(strategy.shouldSubscribeToParticipant({ ...host, isPublishing: false })).toBe(false);
    expect(v.session.state).toMatchObject({ status: "live", stageArn: A, tracks: [video, audio] });
  });

  it("proves itself on the viewer socket with its token in the first message, never in the URL", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    const token = v.stages.stages[0]!.token;
    expect(v.sockets[0]!.json()[0]).toEqual({ type: "hello", token });
  });

  it("shows the viewer count from the socket", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    v.sockets[0]!.receive({ type: "welcome", data: { stageArn: A, viewers: 7, live: true, state: "ready" } });
    v.sockets[0]!.receive({ type: "viewers", data: { count: 8 } });
    expect(v.session.state.viewers).toBe(8);
  });

  it("waits for a broadcast that has not started, polling gently", async () => {
    let started = false;
    const v = viewer({
      join: async (stageArn) => {
        if (!started) throw Object.assign(new Error("not started"), { code: "NOT_FOUND" });
        return {
          token: fakeToken({ jti: "v", resource: stageArn ?? A, iat: 0, exp: 9e9 }),
          participantId: "v",
          stageArn: stageArn ?? A,
          currentViewers: 0,
        };
      },
    });
    v.session.start();
    await settle();
    expect(v.session.state.status).toBe("offline");
    expect(v.clock.pending()[0]).toBeGreaterThanOrEqual(1_000);
    started = true;
    await v.clock.advance(2_000);
    await playing(v);
    expect(v.session.state.status).toBe("live");
  });

  it("migrates without a gap: the new stage is joined and playing before the old one is left", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    v.sockets[0]!.receive({ type: "migrate", data: { stageArn: B } });
    await settle();
    expect(v.calls).toEqual(["join", `join ${B}`]);
    expect(v.stages.order).toEqual(["join 0", "join 1"]);
    expect(v.session.state.stageArn).toBe(A);
    v.stages.stages[1]!.emit("stageParticipantStreamsAdded", host, [video]);
    await v.clock.advance(100);
    expect(v.stages.order).toEqual(["join 0", "join 1", "leave 0"]);
    expect(v.sockets[0]!.closedWith).toBe(1000);
    expect(v.session.state).toMatchObject({ status: "live", stageArn: B });
  });

  it("reconnects by itself with growing, jittered delays after losing the connection", async () => {
    let fail = 0;
    const join = async (stageArn?: string) => {
      if (fail-- > 0) throw Object.assign(new Error("network"), { code: "NETWORK" });
      return {
        token: fakeToken({ jti: "v", resource: A, iat: 0, exp: 9e9 }),
        participantId: "v",
        stageArn: stageArn ?? A,
        currentViewers: 0,
      };
    };
    const w = viewer({ join });
    w.session.start();
    await playing(w);
    fail = 2;
    w.sockets[0]!.drop(1006);
    expect(w.session.state.status).toBe("reconnecting");
    expect(w.stages.stages[0]!.left).toBe(true);
    expect(w.clock.pending()[0]).toBe(375);
    await w.clock.advance(375); // attempt 1 fails
    expect(w.clock.pending()[0]).toBe(750);
    await w.clock.advance(750); // attempt 2 fails
    expect(w.clock.pending()[0]).toBe(1500);
    await w.clock.advance(1500);
    await playing(w, 1);
    expect(w.session.state.status).toBe("live");
  });

  it("a viewer socket that stops answering pings counts as a lost connection", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    await v.clock.advance(60_000);
    expect(v.session.state.status).toBe("live");
    v.silence();
    await v.clock.advance(45_000);
    expect(v.session.state.status).toBe("reconnecting");
  });

  it("drops the connection when the browser goes offline and retries at once when it is back", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    v.session.networkLost();
    expect(v.session.state).toMatchObject({ status: "reconnecting", tracks: [] });
    v.session.networkBack();
    await playing(v, 1);
    expect(v.session.state.status).toBe("live");
    expect(v.calls).toEqual(["join", "join"]);
  });

  it("on `ended` leaves the stage and never reconnects", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    v.sockets[0]!.receive({ type: "ended" });
    expect(v.session.state.status).toBe("ended");
    expect(v.stages.stages[0]!.left).toBe(true);
    await v.clock.advance(10 * MINUTE);
    expect(v.calls).toEqual(["join"]);
  });

  it("renews its token five minutes before expiry by exchanging it in place", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    v.sockets[0]!.receive(""); // not JSON: ignored
    await v.clock.advance(55 * MINUTE);
    expect(v.calls).toEqual(["join", "renew v-1"]);
    // The renewal is proven with the token the viewer holds.
    expect(v.tokens).toEqual([v.stages.stages[0]!.token]);
    expect(v.stages.stages).toHaveLength(1);
    expect(v.stages.stages[0]!.exchanged).toHaveLength(1);
  });

  it("rejoins when the renewed token is for a new participant, leaving the old stage connection last", async () => {
    const v = viewer({
      renew: async (stageArn) => ({ ...v.grant(stageArn, "v-new") }),
    });
    v.session.start();
    await playing(v);
    await v.clock.advance(55 * MINUTE);
    expect(v.stages.order).toEqual(["join 0", "join 1", "leave 0"]);
  });
});

describe("the viewer and IVS's connection lifecycle (errored is transient, the last connection wins)", () => {
  it("leaves a transient errored to the SDK: the same connection plays again when it reconnects, no new participant", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    const stage = v.stages.stages[0]!;
    stage.emit("stageConnectionStateChanged", "errored");
    expect(v.session.state).toMatchObject({ status: "reconnecting", message: expect.stringMatching(/interrupted/) });
    stage.emit("stageConnectionStateChanged", "connecting");
    await v.clock.advance(20_000);
    expect(v.calls).toEqual(["join"]);
    expect(stage.left).toBe(false);
    stage.emit("stageConnectionStateChanged", "connected");
    expect(v.session.state).toMatchObject({ status: "live", tracks: [video, audio] });
    await v.clock.advance(RECOVERY_TIMEOUT_MS);
    expect(v.calls).toEqual(["join"]);
    expect(v.stages.stages).toHaveLength(1);
  });

  it("joins afresh only when errored neither recovers nor leaves in time", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    v.stages.stages[0]!.emit("stageConnectionStateChanged", "errored");
    await v.clock.advance(RECOVERY_TIMEOUT_MS - 1);
    expect(v.calls).toEqual(["join"]);
    await v.clock.advance(1);
    expect(v.stages.stages[0]!.left).toBe(true);
    await v.clock.advance(1_000);
    expect(v.calls).toEqual(["join", "join"]);
  });

  it("taken over by the same viewer elsewhere (token reused), it stops and says so, and never fights back", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    v.stages.stages[0]!.emit("stageLeft", "token-reused");
    v.stages.stages[0]!.emit("stageConnectionStateChanged", "disconnected");
    await v.clock.advance(10 * MINUTE);
    expect(v.calls).toEqual(["join"]);
    expect(v.session.state).toMatchObject({ status: "stopped", message: expect.stringMatching(/another window/) });
    expect(v.stages.stages[0]!.left).toBe(true);
    expect(v.sockets[0]!.closedWith).toBe(1000);
  });

  it("removed by the server (participant disconnected), it stops with the reason", async () => {
    const v = viewer();
    v.session.start();
    await playing(v);
    v.stages.stages[0]!.emit("stageLeft", "participant-disconnected");
    await v.clock.advance(10 * MINUTE);
    expect(v.calls).toEqual(["join"]);
    expect(v.session.state.status).toBe("stopped");
  });

  it("a deleted stage, an exchange refused or the SDK giving up: joins again through the join path", async () => {
    for (const reason of ["stage-deleted", "failed-exchange", "unknown"] as const) {
      const v = viewer();
      v.session.start();
      await playing(v);
      v.stages.stages[0]!.emit("stageLeft", reason);
      expect(v.session.state.status).toBe("reconnecting");
      await v.clock.advance(1_000);
      await playing(v, 1);
      expect(v.calls).toEqual(["join", "join"]);
      expect(v.session.state.status).toBe("live");
    }
  });
});
