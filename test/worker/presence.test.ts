import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { StageShard } from "../../worker/shard/stage-shard.ts";
import { api, asViewer, call, data, joinAs, newBroadcastId, viewerSocket, waitFor } from "./support.ts";

type Token = { token: string; participantId: string; stageArn: string };
type Stats = { totalViewers: number; activeStages: number; stages: { stageArn: string; viewers: number }[] };

async function liveBroadcast() {
  const b = newBroadcastId();
  const grant = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
  return { b, origin: grant.stageArn };
}

const join = joinAs;

describe("viewer presence", () => {
  it("a heartbeat keeps a viewer, a silent viewer is swept after the TTL, and leave removes at once", async () => {
    const { b } = await liveBroadcast();
    const kept = await join(b, "kept");
    const silent = await join(b, "silent");
    const leaving = await join(b, "leaving");
    expect(new Set([kept.stageArn, silent.stageArn, leaving.stageArn]).size).toBeGreaterThanOrEqual(1);

    // Leave: gone at once.
    const left = await call(api(b, "/viewer/leave"), { body: asViewer(leaving), key: null });
    expect(data(left)).toMatchObject({ removed: 1 });

    // Move the clock for the shards: everyone was last seen two minutes ago, then "kept" heartbeats.
    for (const arn of new Set([kept.stageArn, silent.stageArn])) {
      await runInDurableObject(env.STAGE_SHARD.getByName(arn), (_shard: StageShard, state) => {
        state.storage.sql.exec("UPDATE viewers SET last_seen = ?", Date.now() - 120_000);
      });
    }
    const beat = await call(api(b, "/viewer/heartbeat"), { body: asViewer(kept), key: null });
    expect(data(beat)).toMatchObject({ userId: "kept", nextHeartbeatSeconds: 30 });
    for (const arn of new Set([kept.stageArn, silent.stageArn]))
      await runDurableObjectAlarm(env.STAGE_SHARD.getByName(arn));

    // (A swept viewer that heartbeats again is re-admitted: test/worker/http-viewers.test.ts.)
    const kepts = data(
      await call<{ viewers: { userId: string }[] }>(api(b, `/viewer/list/${encodeURIComponent(kept.stageArn)}`)),
    ).viewers;
    expect(kepts.map((v) => v.userId)).toContain("kept");
    expect(kepts.map((v) => v.userId)).not.toContain("silent");

    // /api/stats counts what the shards hold.
    await waitFor(async () => {
      const stats = data(await call<Stats>(api(b, "/stats")));
      expect(stats.totalViewers).toBe(1);
    });
    const history = data(await call<{ sessions: { reason: string }[] }>(api(b, "/viewer/history/silent"))).sessions;
    expect(history).toEqual([expect.objectContaining({ reason: "timeout" })]);
  });

  it("a viewer on the viewer socket needs no heartbeat, and leaves when the socket closes", async () => {
    const { b } = await liveBroadcast();
    const viewer = await join(b, "socketed");
    const ws = await viewerSocket(b, viewer);
    const welcome = await ws.next("welcome");
    expect(welcome.data).toMatchObject({ stageArn: viewer.stageArn, state: "ready" });
    ws.ws.send("ping");
    expect((await ws.next("pong")).type).toBe("pong");
    ws.close();
    await waitFor(async () => {
      const list = data(await call<{ total: number }>(api(b, `/viewer/list/${encodeURIComponent(viewer.stageArn)}`)));
      expect(list.total).toBe(0);
    });
  });

  it("the viewer socket refuses a participant that was never admitted", async () => {
    const { b, origin } = await liveBroadcast();
    const answer = await call(`${api(b, "/viewer/ws")}?stageArn=${encodeURIComponent(origin)}&participantId=nobody`, {
      key: null,
    });
    expect(answer.status).toBe(426);
    const { SELF } = await import("cloudflare:test");
    const response = await SELF.fetch(
      `https://fanout.test${api(b, "/viewer/ws")}?stageArn=${encodeURIComponent(origin)}&participantId=nobody`,
      {
        headers: { Upgrade: "websocket" },
      },
    );
    expect(response.status).toBe(404);
  });

  it("rejoin puts a swept viewer back with its participant id", async () => {
    const { b } = await liveBroadcast();
    const viewer = await join(b, "blip");
    await call(api(b, "/viewer/leave"), { body: asViewer(viewer), key: null });
    const back = await call(api(b, "/viewer/rejoin"), { body: asViewer(viewer), key: null });
    expect(data(back)).toMatchObject({ participantId: viewer.participantId });
    const list = data(
      await call<{ viewers: { participantId: string }[] }>(
        api(b, `/viewer/list/${encodeURIComponent(viewer.stageArn)}`),
      ),
    );
    expect(list.viewers.map((v) => v.participantId)).toContain(viewer.participantId);
  });
});

describe("draining and ending", () => {
  it("when load falls a stage drains: no new viewers, its viewers get migrate, and it is deleted once empty; never the origin", async () => {
    const { b, origin } = await liveBroadcast();
    const viewers = [];
    for (let i = 0; i < 5; i++) viewers.push(await join(b, `v${i}`));
    await waitFor(async () =>
      expect(data(await call<{ total: number }>(api(b, "/stage/list"))).total).toBeGreaterThanOrEqual(2),
    );
    const onEdge = viewers.filter((v) => v.stageArn !== origin);
    expect(onEdge.length).toBeGreaterThan(0);
    const edgeArn = onEdge[0]!.stageArn;
    const ws = await viewerSocket(b, onEdge[0]!);
    await ws.next("welcome");

    // Everyone but the socket viewer leaves: one viewer fits the origin, so the edge stages drain.
    for (const v of viewers) if (v !== onEdge[0]) await call(api(b, "/viewer/leave"), { body: asViewer(v), key: null });
    const migrate = await ws.next("migrate", 15_000);
    expect(migrate.type).toBe("migrate");
    const draining = await call<{ stages: { stageArn: string; state: string; role: string }[] }>(api(b, "/stage/list"));
    const stage = data(draining).stages.find((s) => s.stageArn === edgeArn);
    expect(stage?.state).toBe("draining");
    // A draining stage admits nobody.
    const refused = await call(api(b, "/token/viewer"), { body: { userId: "late", stageArn: edgeArn }, key: null });
    expect(refused.status).toBe(503);

    // The last viewer moves: the stage empties and is deleted. The origin stays.
    ws.close();
    await waitFor(async () => {
      const list = data(await call<{ stages: { stageArn: string; role: string }[] }>(api(b, "/stage/list"))).stages;
      expect(list.map((s) => s.stageArn)).not.toContain(edgeArn);
      expect(list.find((s) => s.role === "origin")?.stageArn).toBe(origin);
    }, 20_000);
  });

  it("the origin cannot be drained or deleted while live", async () => {
    const { b, origin } = await liveBroadcast();
    expect(
      (await call(api(b, `/stage/${encodeURIComponent(origin)}`), { method: "PUT", body: { state: "draining" } }))
        .status,
    ).toBe(409);
    expect((await call(api(b, `/stage/${encodeURIComponent(origin)}`), { method: "DELETE" })).status).toBe(409);
  });

  it("ending the broadcast tells viewers and deletes every stage", async () => {
    const { b } = await liveBroadcast();
    const viewers = [];
    for (let i = 0; i < 4; i++) viewers.push(await join(b, `v${i}`));
    const ws = await viewerSocket(b, viewers[0]!);
    await ws.next("welcome");
    const ended = data(await call<{ deleted: string[] }>(api(b, "/broadcast/end"), { body: {} }));
    expect(ended.deleted.length).toBeGreaterThanOrEqual(1);
    await ws.next("ended");
    await waitFor(async () => {
      expect(data(await call<{ total: number }>(api(b, "/stage/list"))).total).toBe(0);
      const { emulator } = await import("./support.ts");
      expect(await emulator.stagesOf(b)).toEqual([]);
    }, 15_000);
    const after = await call(api(b, "/token/viewer"), { body: { userId: "late" }, key: null });
    expect(after.status).toBe(404);
  });
});

describe("a broadcast left idle", () => {
  async function idleFor(b: string, minutes: number) {
    const { env: testEnv, runInDurableObject: inObject } = await import("cloudflare:test");
    await inObject(testEnv.BROADCAST.getByName(b), (_o, state) => {
      const past = Date.now() - minutes * 60_000;
      state.storage.sql.exec("UPDATE publisher SET since = ?", past);
      state.storage.sql.exec("UPDATE broadcast SET started_at = ?", past);
    });
  }

  it("ends by itself once the publisher has not published for PUBLISHER_IDLE_END_MINUTES", async () => {
    const { b } = await liveBroadcast();
    await idleFor(b, 11);
    await runDurableObjectAlarm(env.BROADCAST.getByName(b));
    await waitFor(async () => expect(data(await call<{ status: string }>(api(b, "/stats"))).status).toBe("ended"));
    await waitFor(async () => expect(data(await call<{ total: number }>(api(b, "/stage/list"))).total).toBe(0));
  });

  it("ends when the publisher stays connected but stopped publishing: IVS's `published` means 'ever', its last event says now", async () => {
    const b = newBroadcastId();
    const grant = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const { connectPublisher } = await import("./support.ts");
    const studio = await connectPublisher(grant.token);
    await studio.publish();
    studio.ws.send(JSON.stringify({ type: "unpublish" }));
    await studio.next("published");
    await idleFor(b, 11);
    await runDurableObjectAlarm(env.BROADCAST.getByName(b));
    await waitFor(async () => expect(data(await call<{ status: string }>(api(b, "/stats"))).status).toBe("ended"));
    studio.close();
  });

  it("stays live when IVS shows the publisher publishing, even if the studio never said so", async () => {
    const b = newBroadcastId();
    const grant = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "obs" } }));
    const { connectPublisher } = await import("./support.ts");
    const encoder = await connectPublisher(grant.token);
    await encoder.publish();
    await idleFor(b, 11);
    await runDurableObjectAlarm(env.BROADCAST.getByName(b));
    const stats = data(await call<{ status: string; isPublisherLive: boolean }>(api(b, "/stats")));
    expect(stats).toMatchObject({ status: "live", isPublisherLive: true });
    encoder.close();
  });
});
