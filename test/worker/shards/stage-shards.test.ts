import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { shardCapacity, shardName, shardOf } from "../../../worker/shard/admission.ts";
import type { StageShard } from "../../../worker/shard/stage-shard.ts";
import {
  api,
  asViewer,
  call,
  closeOf,
  data,
  joinAs,
  live,
  newBroadcastId,
  viewerSocket,
  waitFor,
  type ViewerGrant,
} from "../support.ts";

/**
 * A stage's seats over several shards (shard/admission.ts). This project's stages have 10 seats over
 * shards of at most 3: four shards of 3, 3, 2 and 2 seats, as a stage of 10,000 has forty of 250.
 */

const CAPACITY = 10;
const SHARDS = 4;

type Stats = { totalViewers: number; stages: { stageArn: string; viewers: number }[] };

const shard = (stageArn: string, index: number) => env.STAGE_SHARD.getByName(shardName(stageArn, index));
const seatsOn = (stageArn: string, index: number) =>
  runInDurableObject(
    shard(stageArn, index),
    (_s: StageShard, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM viewers").one().n,
  );
const onShard = (v: ViewerGrant) => shardOf(v.participantId, SHARDS);

describe("a stage's seats over several shards", () => {
  it("a crowd's joins land on every shard, none past its share, and the stage seats exactly its capacity", async () => {
    const b = newBroadcastId();
    const { stageArn: origin } = await live(b);
    const viewers = await Promise.all(Array.from({ length: CAPACITY }, (_, i) => joinAs(b, `crowd-${i}`, origin)));
    expect(viewers.every((v) => v.stageArn === origin)).toBe(true);

    // Every shard took its share and no more: 3 + 3 + 2 + 2.
    const seats = await Promise.all(Array.from({ length: SHARDS }, (_, i) => seatsOn(origin, i)));
    expect(seats).toEqual(Array.from({ length: SHARDS }, (_, i) => shardCapacity(CAPACITY, SHARDS, i)));
    // Each viewer sits on the shard its participant id names.
    for (let i = 0; i < SHARDS; i++)
      expect(viewers.filter((v) => onShard(v) === i)).toHaveLength(shardCapacity(CAPACITY, SHARDS, i));

    // The stage is full: one more viewer is refused there.
    const refused = await call(api(b, "/token/viewer"), {
      body: { userId: "one-too-many", stageArn: origin },
      key: null,
    });
    expect(refused.status).toBe(503);

    // The head reports the stage's count, its own and the others', to the broadcast.
    await waitFor(async () => {
      const stats = data(await call<Stats>(api(b, "/stats")));
      expect(stats.stages.find((s) => s.stageArn === origin)?.viewers).toBe(CAPACITY);
    });
    // The operator's list of the stage's viewers is every shard's.
    const listed = data(
      await call<{ viewers: { userId: string }[]; total: number }>(
        api(b, `/viewer/list/${encodeURIComponent(origin)}`),
      ),
    );
    expect(listed.total).toBe(CAPACITY);
    expect(new Set(listed.viewers.map((v) => v.userId))).toEqual(new Set(viewers.map((v) => v.userId)));
    await call(api(b, "/broadcast/end"), { body: {} });
  });

  it("a viewer's heartbeat, renewal, leave and socket reach the shard that holds its seat, and its session the broadcast's history", async () => {
    const b = newBroadcastId();
    const { stageArn: origin } = await live(b);
    // Viewers until one sits on a shard other than the head.
    let viewer: ViewerGrant | undefined;
    for (let i = 0; !viewer && i < CAPACITY; i++) {
      const v = await joinAs(b, `viewer-${i}`, origin);
      if (onShard(v) !== 0) viewer = v;
    }
    expect(viewer).toBeDefined();
    const v = viewer!;

    const beat = await call(api(b, "/viewer/heartbeat"), { body: asViewer(v), key: null });
    expect(data(beat)).toMatchObject({ status: "present" });
    const renewed = await call<ViewerGrant>(api(b, "/token/viewer/renew"), { body: asViewer(v), key: null });
    expect(data(renewed)).toMatchObject({ participantId: v.participantId, stageArn: origin });

    const ws = await viewerSocket(b, v);
    await ws.next("welcome");
    const closed = closeOf(ws);

    // Leaving closes its socket, on that shard.
    const left = await call(api(b, "/viewer/leave"), { body: asViewer(v), key: null });
    expect(data(left)).toMatchObject({ removed: 1 });
    expect(await closed).toMatchObject({ code: 1000, reason: "left" });
    expect(await seatsOn(origin, onShard(v))).toBe(0);

    // Its ended session went to the head with the shard's report, and from there to the broadcast.
    await waitFor(async () => {
      const history = data(await call<{ sessions: { stageArn: string }[] }>(api(b, `/viewer/history/${v.userId}`)));
      expect(history.sessions).toEqual([expect.objectContaining({ stageArn: origin })]);
    });
    await call(api(b, "/broadcast/end"), { body: {} });
  });

  it("a drain told to the head reaches every shard: each viewer hears where to go, whichever shard it sits on", async () => {
    const b = newBroadcastId();
    const { stageArn: origin } = await live(b);
    await Promise.all(Array.from({ length: CAPACITY }, (_, i) => joinAs(b, `full-${i}`, origin)));
    // The origin full, the pool adds an edge; viewers on it, over its shards.
    const edge = await waitFor(async () => {
      const stages = data(
        await call<{ stages: { stageArn: string; role: string; state: string }[] }>(api(b, "/stage/list")),
      ).stages;
      const found = stages.find((s) => s.role === "edge" && s.state === "ready");
      expect(found).toBeDefined();
      return found!.stageArn;
    });
    const onEdge = await Promise.all(Array.from({ length: 6 }, (_, i) => joinAs(b, `edge-${i}`, edge)));
    expect(new Set(onEdge.map(onShard)).size).toBeGreaterThan(1);
    // Their reports in (the edge's shards to its head, the head to the broadcast), and that crowd
    // over: otherwise the policy revives the stage for the arrivals it measured.
    await waitFor(async () => {
      const stats = data(await call<Stats>(api(b, "/stats")));
      expect(stats.stages.find((s) => s.stageArn === edge)?.viewers).toBe(onEdge.length);
    });
    await runInDurableObject(env.BROADCAST.getByName(b), (_o, state) => {
      state.storage.sql.exec("UPDATE stages SET join_rate = 0");
    });
    data(await call(api(b, `/stage/${encodeURIComponent(edge)}`), { method: "PUT", body: { state: "draining" } }));
    for (const viewer of onEdge) {
      const answer = data(
        await call<{ state: string; migrateTo?: string }>(api(b, "/viewer/heartbeat"), {
          body: asViewer(viewer),
          key: null,
        }),
      );
      expect(answer).toMatchObject({ state: "draining", migrateTo: expect.any(String) });
    }
    await call(api(b, "/broadcast/end"), { body: {} });
  });

  it("what the broadcast tells the stage reaches every shard: the end closes every viewer's seat", async () => {
    const b = newBroadcastId();
    const { stageArn: origin } = await live(b);
    await Promise.all(Array.from({ length: CAPACITY }, (_, i) => joinAs(b, `ending-${i}`, origin)));
    await call(api(b, "/broadcast/end"), { body: {} });
    await waitFor(async () => {
      const seats = await Promise.all(Array.from({ length: SHARDS }, (_, i) => seatsOn(origin, i)));
      expect(seats).toEqual([0, 0, 0, 0]);
    });
    const states = await Promise.all(
      Array.from({ length: SHARDS }, (_, i) =>
        runInDurableObject(
          shard(origin, i),
          (_s: StageShard, state) => state.storage.sql.exec<{ state: string }>("SELECT state FROM shard").one().state,
        ),
      ),
    );
    expect(states).toEqual(["closed", "closed", "closed", "closed"]);
  });
});
