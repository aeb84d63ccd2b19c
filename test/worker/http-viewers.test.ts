import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { StageShard } from "../../worker/shard/stage-shard.ts";
import {
  api,
  asViewer,
  call,
  data,
  joinAs,
  liveWithEdge,
  newBroadcastId,
  tick,
  waitFor,
  type ViewerGrant,
} from "./support.ts";

/**
 * Viewers that only speak HTTP, as seed 003's guide integrates: a token, then a heartbeat every
 * 30 s, nothing else. No socket tells them anything; the heartbeat's answer must.
 */

type Presence = {
  status: "present" | "readmitted" | "moved";
  state: string;
  viewers: number;
  migrateTo?: string;
  join?: ViewerGrant & { currentViewers: number };
};
type StageView = { stageArn: string; role: string; state: string; viewers: number };

const heartbeat = async (b: string, v: ViewerGrant) =>
  call<Presence>(api(b, "/viewer/heartbeat"), { body: asViewer(v), key: null });
const stages = async (b: string) => data(await call<{ stages: StageView[] }>(api(b, "/stage/list"))).stages;
const seated = async (b: string, stageArn: string) =>
  data(
    await call<{ viewers: { participantId: string }[] }>(api(b, `/viewer/list/${encodeURIComponent(stageArn)}`)),
  ).viewers.map((v) => v.participantId);

/** Everyone on `stageArn` was last seen two minutes ago, and the sweep runs: all timed out. */
async function sweepEveryone(stageArn: string) {
  await runInDurableObject(env.STAGE_SHARD.getByName(stageArn), (_shard: StageShard, state) => {
    state.storage.sql.exec("UPDATE viewers SET last_seen = ?", Date.now() - 120_000);
  });
  await runDurableObjectAlarm(env.STAGE_SHARD.getByName(stageArn));
}

describe("viewers that only heartbeat", () => {
  it("a swept viewer's next heartbeat re-admits it: the same participant, counted again", async () => {
    const b = newBroadcastId();
    const { edge } = await liveWithEdge(b);
    const viewer = await joinAs(b, "sleeper", edge);
    await sweepEveryone(edge);
    expect(await seated(b, edge)).toEqual([]);

    const answer = data(await heartbeat(b, viewer));
    expect(answer).toMatchObject({ status: "readmitted", state: "ready", stageArn: edge });
    expect(answer.join).toBeUndefined();
    expect(await seated(b, edge)).toEqual([viewer.participantId]);
    // Its token still proves it: the next heartbeat is an ordinary one.
    expect(data(await heartbeat(b, viewer)).status).toBe("present");
  });

  it("a swept viewer whose stage has no seat for it now gets a token on a stage that serves", async () => {
    const b = newBroadcastId();
    const { grant, edge } = await liveWithEdge(b);
    const swept = await joinAs(b, "swept", edge);
    await sweepOne(edge, swept.participantId);
    // Meanwhile its seat was taken: the edge (3 seats) is full; the origin has room.
    await sweepEveryone(grant.stageArn);
    await joinAs(b, "took-a-seat", edge);
    await joinAs(b, "took-the-other", edge);
    expect(await seated(b, edge)).toHaveLength(3);

    const answer = data(await heartbeat(b, swept));
    expect(answer.status).toBe("moved");
    expect(answer.join).toMatchObject({ userId: "swept" });
    expect(answer.migrateTo).toBe(answer.join!.stageArn);
    expect(answer.migrateTo).not.toBe(edge);
    expect(await seated(b, answer.migrateTo!)).toContain(answer.join!.participantId);
  });

  it("a rejoin naming a stage that was deleted lands on a serving stage, not a 404", async () => {
    const b = newBroadcastId();
    const { edge } = await liveWithEdge(b);
    const viewer = await joinAs(b, "blipped", edge);
    data(await call(api(b, `/stage/${encodeURIComponent(edge)}`), { method: "DELETE" }));
    const back = data(
      await call<{ stageArn: string; participantId: string; join?: ViewerGrant }>(api(b, "/viewer/rejoin"), {
        body: asViewer(viewer),
        key: null,
      }),
    );
    expect(back.stageArn).not.toBe(edge);
    expect(back.join).toMatchObject({ stageArn: back.stageArn, participantId: back.participantId, userId: "blipped" });
    expect((await stages(b)).map((s) => s.stageArn)).toContain(back.stageArn);
    // Only as the participant it was there: another viewer's token proves nothing.
    const stranger = await joinAs(b, "stranger");
    const forged = await call(api(b, "/viewer/rejoin"), {
      body: { ...asViewer(viewer), token: stranger.token },
      key: null,
    });
    expect(forged.status).toBe(403);
    // And a heartbeat to the deleted stage moves the viewer too.
    const beat = data(await heartbeat(b, viewer));
    expect(beat).toMatchObject({ status: "moved", state: "closed" });
    expect(beat.join?.stageArn).toBe(beat.migrateTo);
  });

  it("a rejoin naming a draining stage gets a seat on a serving one", async () => {
    const b = newBroadcastId();
    const { edge } = await liveWithEdge(b);
    const viewer = await joinAs(b, "blipped", edge);
    data(await call(api(b, `/stage/${encodeURIComponent(edge)}`), { method: "PUT", body: { state: "draining" } }));
    await sweepOne(edge, viewer.participantId);
    const back = data(
      await call<{ stageArn: string; join?: ViewerGrant }>(api(b, "/viewer/rejoin"), {
        body: asViewer(viewer),
        key: null,
      }),
    );
    expect(back.stageArn).not.toBe(edge);
    expect(back.join?.stageArn).toBe(back.stageArn);
  });

  it("a drained stage's HTTP-only viewers all hear migrateTo, with a token, before it is deleted", async () => {
    const b = newBroadcastId();
    const { grant, edge } = await liveWithEdge(b);
    // Two HTTP-only viewers on the edge, room for them on the origin.
    await sweepEveryone(edge);
    await sweepEveryone(grant.stageArn);
    const onEdge = [await joinAs(b, "http-1", edge), await joinAs(b, "http-2", edge)];
    // The edge's load report (with the join rate of the two joins) is in, and that crowd is over:
    // otherwise the policy would revive the stage for it.
    await runDurableObjectAlarm(env.STAGE_SHARD.getByName(edge));
    await runInDurableObject(env.BROADCAST.getByName(b), (_o, state) => {
      state.storage.sql.exec("UPDATE stages SET join_rate = 0");
    });
    data(await call(api(b, `/stage/${encodeURIComponent(edge)}`), { method: "PUT", body: { state: "draining" } }));
    // DRAIN_TIMEOUT_SECONDS is 30 in these tests, the viewer TTL 60: 40 s into the drain, a viewer that
    // heartbeats every 30 s may not have heard yet, so the stage must still be there.
    await runInDurableObject(env.BROADCAST.getByName(b), (_o, state) => {
      state.storage.sql.exec("UPDATE stages SET draining_since = ? WHERE arn = ?", Date.now() - 40_000, edge);
      // The joins above are a crowd to the policy (join rate × lead): no crowd now, or it revives the stage.
      state.storage.sql.exec("UPDATE stages SET join_rate = 0");
    });
    await tick(b);
    expect((await stages(b)).find((s) => s.stageArn === edge)?.state).toBe("draining");

    const moved: string[] = [];
    for (const viewer of onEdge) {
      const answer = data(await heartbeat(b, viewer));
      expect(answer).toMatchObject({ status: "present", state: "draining", migrateTo: expect.any(String) });
      expect(answer.join).toMatchObject({ stageArn: answer.migrateTo, userId: viewer.userId });
      moved.push(answer.join!.participantId);
      // Told once with a token; later heartbeats only repeat where to go.
      const again = data(await heartbeat(b, viewer));
      expect(again.migrateTo).toEqual(expect.any(String));
      expect(again.join).toBeUndefined();
      await call(api(b, "/viewer/leave"), { body: asViewer(viewer), key: null });
    }
    // Everyone heard and moved: the empty stage goes.
    await waitFor(async () => {
      await tick(b);
      expect((await stages(b)).map((s) => s.stageArn)).not.toContain(edge);
    }, 20_000);
  });
});

describe("viewers moving off a draining stage", () => {
  it("are seated where they go but are not arrivals: the join rate the policy provisions on stays 0", async () => {
    const b = newBroadcastId();
    const { grant, edge } = await liveWithEdge(b);
    await sweepEveryone(grant.stageArn);
    const mover = await joinAs(b, "mover", edge);
    // The joins so far reported and forgotten: only the move can make a join rate now.
    await runDurableObjectAlarm(env.STAGE_SHARD.getByName(edge));
    await runInDurableObject(env.BROADCAST.getByName(b), (_o, state) => {
      state.storage.sql.exec("UPDATE stages SET join_rate = 0");
    });
    data(await call(api(b, `/stage/${encodeURIComponent(edge)}`), { method: "PUT", body: { state: "draining" } }));
    const moved = data(await heartbeat(b, mover)).join;
    expect(moved).toMatchObject({ stageArn: grant.stageArn, userId: "mover" });
    // The origin's report: one more viewer, no arrival.
    await runDurableObjectAlarm(env.STAGE_SHARD.getByName(grant.stageArn));
    const origin = await runInDurableObject(env.BROADCAST.getByName(b), (_o, state) =>
      state.storage.sql
        .exec<{ viewers: number; join_rate: number }>(
          "SELECT viewers, join_rate FROM stages WHERE arn = ?",
          grant.stageArn,
        )
        .one(),
    );
    expect(origin).toEqual({ viewers: 1, join_rate: 0 });
  });
});

async function sweepOne(stageArn: string, participantId: string) {
  await runInDurableObject(env.STAGE_SHARD.getByName(stageArn), (_shard: StageShard, state) => {
    state.storage.sql.exec(
      "UPDATE viewers SET last_seen = ? WHERE participant_id = ?",
      Date.now() - 120_000,
      participantId,
    );
  });
  await runDurableObjectAlarm(env.STAGE_SHARD.getByName(stageArn));
}
