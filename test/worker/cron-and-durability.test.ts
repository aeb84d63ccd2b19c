import { evictAllDurableObjects } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { fanoutTags } from "../../worker/ivs/tags.ts";
import { api, call, data, emulator, ivs, newBroadcastId, runCron, waitFor } from "./support.ts";

type Token = { token: string; participantId: string; stageArn: string };

describe("the cron", () => {
  // The files before this one leave stages behind (faults, evicted objects, other deployments), and
  // the first cron of a run deletes them all at the account's four DeleteStage a second: how long
  // that takes depends on the order the files ran in. Done first, so each test waits for its own.
  beforeAll(() => runCron(), 180_000);

  it("deletes an orphan stage that carries Fanout's tags and leaves untagged stages alone", async () => {
    const b = newBroadcastId();
    const origin = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } })).stageArn;
    const orphan = (
      await ivs().createStage({ tags: fanoutTags({ broadcastId: b, role: "edge", deployment: "fanout" }) })
    ).stage.arn;
    const untagged = (await ivs().createStage({ name: "someone-elses" })).stage.arn;
    const otherDeployment = (
      await ivs().createStage({ tags: fanoutTags({ broadcastId: b, role: "edge", deployment: "staging" }) })
    ).stage.arn;

    await runCron();

    const arns = (await emulator.state()).stages.map((s) => s.arn);
    expect(arns).not.toContain(orphan);
    expect(arns).toContain(untagged);
    expect(arns).toContain(otherDeployment);
    expect(arns).toContain(origin);
    const events = data(await call<{ events: { type: string }[] }>(api(b, "/events"))).events.map((e) => e.type);
    expect(events).toContain("orphan_deleted");
    await ivs().deleteStage(untagged);
    await ivs().deleteStage(otherDeployment);
  });

  it("drops a registry entry whose stage is gone from IVS, and is idempotent", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const edge = data(await call<{ stageArn: string }>(api(b, "/stage"), { body: {} })).stageArn;
    await ivs().deleteStage(edge);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await runCron();
    const stages = data(await call<{ stages: { stageArn: string }[] }>(api(b, "/stage/list"))).stages.map(
      (s) => s.stageArn,
    );
    expect(stages).not.toContain(edge);
    expect(stages).toHaveLength(1);
    await runCron();
    expect(data(await call<{ total: number }>(api(b, "/stage/list"))).total).toBe(1);
  });

  it("takes a snapshot of a live broadcast for the dashboard", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    await runCron();
    const { snapshots } = data(
      await call<{ snapshots: { totalViewers: number }[] }>(api(b, "/stats/snapshots?hours=1")),
    );
    expect(snapshots.length).toBe(1);
  });
});

describe("durability", () => {
  it("evicting every Durable Object loses nothing: registry, sessions and history are all still there", async () => {
    const b = newBroadcastId();
    const grant = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const viewers = [];
    for (let i = 0; i < 4; i++)
      viewers.push(data(await call<Token>(api(b, "/token/viewer"), { body: { userId: `v${i}` }, key: null })));
    await call(api(b, "/viewer/leave"), { body: { ...viewers[0]!, userId: "v0" }, key: null });
    await waitFor(async () =>
      expect(data(await call<{ sessions: unknown[] }>(api(b, "/viewer/history/v0"))).sessions).toHaveLength(1),
    );
    const before = data(await call<{ stages: { stageArn: string }[] }>(api(b, "/stage/list"))).stages.map(
      (s) => s.stageArn,
    );

    await evictAllDurableObjects();

    const after = data(await call<{ stages: { stageArn: string }[] }>(api(b, "/stage/list"))).stages.map(
      (s) => s.stageArn,
    );
    // Nothing lost (the pool may have grown its spare meanwhile).
    expect(after).toEqual(expect.arrayContaining(before));
    expect(
      data(await call<{ publisher: { participantId: string } }>(api(b, "/stats/publisher"))).publisher.participantId,
    ).toBe(grant.participantId);
    for (const v of viewers.slice(1)) {
      const list = data(
        await call<{ viewers: { participantId: string }[] }>(api(b, `/viewer/list/${encodeURIComponent(v.stageArn)}`)),
      );
      expect(list.viewers.map((x) => x.participantId)).toContain(v.participantId);
    }
    expect(data(await call<{ sessions: unknown[] }>(api(b, "/viewer/history/v0"))).sessions).toHaveLength(1);
  });
});
