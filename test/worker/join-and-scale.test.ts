import { afterEach, describe, expect, it } from "vitest";
import { ADMIN, api, call, connectPublisher, data, emulator, newBroadcastId, socket, waitFor } from "./support.ts";

type Token = { token: string; participantId: string; stageArn: string; currentViewers: number; expiresIn: number };
type StageList = {
  stages: { stageArn: string; role: string; state: string; feed: string; replication: string; viewers: number }[];
  total: number;
};

afterEach(() => emulator.clearFaults());

const stagesOf = async (b: string) => data(await call<StageList>(api(b, "/stage/list"))).stages;

describe("the origin stage", () => {
  it("the first publisher token of a new broadcast creates exactly one origin stage", async () => {
    const b = newBroadcastId();
    const grant = data(
      await call<Token & { whipEndpoint: string }>(api(b, "/token/publisher"), { body: { userId: "host" } }),
    );
    expect(grant.stageArn).toMatch(/^arn:aws:ivs:us-east-1:\d+:stage\//);
    expect(grant.whipEndpoint).toMatch(/\/whip$/);
    expect(grant.expiresIn).toBeGreaterThan(239 * 60);
    const stages = await stagesOf(b);
    expect(stages).toEqual([expect.objectContaining({ stageArn: grant.stageArn, role: "origin", state: "ready" })]);
    expect((await emulator.stagesOf(b)).map((s) => s.tags)).toEqual([
      // The request tag makes CreateStage safe to retry (pool.ts): a stage a timed-out call made is found by it.
      {
        "fanout:broadcast": b,
        "fanout:role": "origin",
        "fanout:creator": "fanout",
        "fanout:request": expect.any(String),
      },
    ]);
  });

  it("50 concurrent publisher-token and viewer-token requests never create a duplicate stage", async () => {
    const b = newBroadcastId();
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2 === 0
          ? call(api(b, "/token/publisher"), { body: { userId: `host-${i}` } })
          : call(api(b, "/token/viewer"), { body: { userId: `v-${i}` }, key: null }),
      ),
    );
    // Viewers before the origin exists are told to wait (404); none of this may create a second origin.
    for (const a of answers) expect([200, 404, 503]).toContain(a.status);
    expect(answers.filter((a) => a.status === 200).length).toBeGreaterThanOrEqual(25);
    const origins = (await stagesOf(b)).filter((s) => s.role === "origin");
    expect(origins).toHaveLength(1);
    expect((await emulator.stagesOf(b)).filter((s) => s.tags["fanout:role"] === "origin")).toHaveLength(1);
  });

  it("a viewer token before the broadcast has any stage is a 404 the viewer page can wait on", async () => {
    const answer = await call(api(newBroadcastId(), "/token/viewer"), { body: { userId: "early" }, key: null });
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ success: false, error: { code: "NOT_FOUND" } });
  });
});

describe("the pool grows with the audience", () => {
  it("viewers joining one by one grow the pool ahead of demand, each on a ready stage, with replication once the publisher publishes", async () => {
    const b = newBroadcastId();
    const grant = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const seen = new Set<string>();
    for (let i = 0; i < 7; i++) {
      const joined = data(await call<Token>(api(b, "/token/viewer"), { body: { userId: `viewer-${i}` }, key: null }));
      const stages = await stagesOf(b);
      expect(stages.find((s) => s.stageArn === joined.stageArn)?.state, `viewer ${i}`).toBe("ready");
      seen.add(joined.stageArn);
      // Capacity 3 and scale-up at 80 %: after every join there must soon be a ready stage with a free seat.
      await waitFor(async () => {
        const now = await stagesOf(b);
        expect(now.some((s) => s.state === "ready" && s.viewers < 3)).toBe(true);
      });
    }
    const stages = await stagesOf(b);
    expect(stages.length).toBeGreaterThanOrEqual(3);
    expect(seen.size).toBeGreaterThanOrEqual(3);

    // Not publishing yet: replication into the edge stages is pending and retried.
    const edges = stages.filter((s) => s.role === "edge");
    expect(edges.every((s) => s.feed === "replica" && s.replication === "pending")).toBe(true);
    await waitFor(async () => {
      const status = data(
        await call<{ error: string | null }>(
          api(b, `/stage/replication/status/${encodeURIComponent(edges[0]!.stageArn)}`),
        ),
      );
      expect(status.error).toMatch(/ResourceNotFoundException|ConflictException/);
    });

    const publisher = await connectPublisher(grant.token);
    await publisher.publish();
    const edgesNow = await waitFor(async () => {
      const now = (await stagesOf(b)).filter((s) => s.role === "edge");
      expect(now.every((s) => s.replication === "active")).toBe(true);
      return now;
    }, 20_000);
    const replicas = (await emulator.state()).replications.filter(
      (r) => r.participantId === grant.participantId && r.replicationState === "ACTIVE",
    );
    expect(new Set(replicas.map((r) => r.destinationStageArn))).toEqual(new Set(edgesNow.map((s) => s.stageArn)));
    publisher.close();
    await call(api(b, "/broadcast/end"), { body: {} });
  });

  it("a stage whose replication IVS refuses falls back to direct, and the broadcaster socket gets stage_created with a publish token", async () => {
    const b = newBroadcastId();
    const grant = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const broadcaster = await socket(api(b, "/ws?type=broadcaster"), { "x-api-key": ADMIN });
    const publisher = await connectPublisher(grant.token);
    await publisher.publish();
    await emulator.faults({
      rules: [{ operation: "StartParticipantReplication", errorType: "AccessDeniedException" }],
    });

    const created = data(await call<{ stageArn: string }>(api(b, "/stage"), { body: {} }));
    const direct = await broadcaster.next("stage_created");
    expect(direct.data).toMatchObject({ stageArn: created.stageArn, feed: "replica" });
    const fallback = await broadcaster.next("stage_created", 15_000);
    expect(fallback.data).toMatchObject({
      stageArn: created.stageArn,
      feed: "direct",
      token: expect.any(String),
      participantId: expect.any(String),
    });
    const stage = (await stagesOf(b)).find((s) => s.stageArn === created.stageArn);
    expect(stage).toMatchObject({ feed: "direct", replication: "failed" });
    // The token lets the studio publish into that stage itself.
    const { decodeJwt } = await import("jose");
    expect(decodeJwt(String(fallback.data!.token))).toMatchObject({
      resource: created.stageArn,
      capabilities: { allow_publish: true },
    });
    broadcaster.close();
    publisher.close();
  });
});
